/**
 * A reload changes the client keys' limits too, even on a gateway that booted with none: the next
 * request is admitted by the new rules.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  allCompleted,
  client,
  ConfigDir,
  OLD_KEY,
  openaiUpstream,
  openStream,
  reloadConfig,
  startFileGateway,
  startHoldingUpstream,
  STAY_KEY,
  type FileGateway,
  type HoldingUpstream,
} from '../helpers/reload.js';

describe('reload: client key limits', function () {
  this.timeout(30_000);
  let dir: ConfigDir;
  let a: HoldingUpstream;
  let g: FileGateway | undefined;

  beforeEach(async () => {
    dir = new ConfigDir();
    a = await startHoldingUpstream();
    a.holding = false;
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await a.close();
    dir.remove();
  });

  const withLimits = (models: string[] | undefined) => {
    const limited = { name: 'old', key: OLD_KEY, ...(models === undefined ? {} : { limits: { models } }) };
    return reloadConfig({
      keys: [limited, { name: 'stay', key: STAY_KEY }],
      upstreams: [openaiUpstream('a', a)],
    });
  };

  it('limits added, changed and removed by reloads apply to the next request', async () => {
    dir.write(withLimits(undefined));
    g = await startFileGateway(dir.file);
    const old = client(g.url, OLD_KEY);
    assert.equal(await allCompleted([openStream(old)]), 1);

    dir.write(withLimits(['other-model']));
    const added = await g.gw.reload();
    assert.deepEqual(added.keys, { added: [], removed: [], changed: ['old'] });
    await assert.rejects(
      openStream(old).done,
      (e: unknown) => e instanceof OpenAI.PermissionDeniedError && /may not use model/.test(e.message),
    );
    // Another key is not limited by it.
    assert.equal(await allCompleted([openStream(client(g.url, STAY_KEY))]), 1);

    dir.write(withLimits(['other-model', 'gpt-test']));
    assert.equal((await g.gw.reload()).status, 'applied');
    assert.equal(await allCompleted([openStream(old)]), 1);

    dir.write(withLimits(undefined));
    assert.equal((await g.gw.reload()).status, 'applied');
    assert.equal(await allCompleted([openStream(old)]), 1);
  });
});
