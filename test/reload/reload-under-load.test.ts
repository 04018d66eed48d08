/**
 * Gateway.reload() with 100 streams open: the config file is rewritten to add an upstream, remove
 * the one the streams are on, and change the client keys. Nothing fails: the streams finish on the
 * removed upstream, which then drains and closes; new requests go to the added one; the removed key
 * is refused and the added one accepted.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { until } from '../helpers/pool.js';
import {
  allCompleted,
  client,
  untilNoConnections,
  ConfigDir,
  NEW_KEY,
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

const STREAMS = 100;

describe('reload under load (Gateway.reload)', function () {
  this.timeout(60_000);
  let dir: ConfigDir;
  let a: HoldingUpstream;
  let b: HoldingUpstream;
  let c: HoldingUpstream;
  let g: FileGateway | undefined;

  beforeEach(async () => {
    dir = new ConfigDir();
    [a, b, c] = await Promise.all([startHoldingUpstream(), startHoldingUpstream(), startHoldingUpstream()]);
    b.holding = false;
    c.holding = false;
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await Promise.all([a.close(), b.close(), c.close()]);
    dir.remove();
  });

  it('adds, removes and changes without one failed request; the removed upstream drains, then closes', async () => {
    // `b` serves another model only: every gpt-test stream lands on `a`.
    dir.write(
      reloadConfig({
        upstreams: [openaiUpstream('a', a), openaiUpstream('b', b, { models: ['other-model'] })],
      }),
    );
    g = await startFileGateway(dir.file);
    const gw = g.gw;
    const keptB = gw.pool.get('b')!;
    const removedA = gw.pool.get('a')!;

    const old = client(g.url, OLD_KEY);
    const streams = Array.from({ length: STREAMS }, () => openStream(old));
    await until(() => a.held.size === STREAMS, `${STREAMS} streams held on a`, 30_000);
    await Promise.all(streams.map((s) => s.started));

    dir.write(
      reloadConfig({
        keys: [
          { name: 'new', key: NEW_KEY },
          { name: 'stay', key: STAY_KEY },
        ],
        upstreams: [openaiUpstream('b', b, { models: ['other-model'] }), openaiUpstream('c', c)],
      }),
    );
    const result = await gw.reload();
    assert.equal(result.status, 'applied', result.errors.join('\n'));
    assert.deepEqual(result.upstreams, { added: ['c'], removed: ['a'], changed: [] });
    assert.deepEqual(result.keys, { added: ['new'], removed: ['old'], changed: [] });
    assert.deepEqual(
      gw.pool.upstreams.map((u) => u.name),
      ['b', 'c'],
    );
    // Unchanged: the same object (its agent, its state).
    assert.equal(gw.pool.get('b'), keptB);
    assert.equal(gw.pool.leasesOf(removedA), STREAMS, 'the removed upstream still runs every stream');

    // New requests: the new key is accepted and served by the added upstream, never the removed one.
    const before = a.requests.length;
    assert.equal(await allCompleted([openStream(client(g.url, NEW_KEY))]), 1);
    assert.equal(c.requests.length, 1);
    assert.equal(a.requests.length, before);
    assert.equal(await allCompleted([openStream(client(g.url, STAY_KEY))]), 1);
    assert.equal(c.requests.length, 2);
    await assert.rejects(openStream(old).done, (err: unknown) => err instanceof OpenAI.AuthenticationError);

    // The removed upstream's streams were never cut: they finish on it, then its agent closes.
    assert.equal(a.held.size, STREAMS);
    assert.ok((await a.connections()) > 0);
    a.release();
    assert.equal(await allCompleted(streams), STREAMS);
    await until(
      () => g!.logs().some((l) => l.msg === 'upstream drained and closed' && l.upstream === 'a'),
      'the drain logged',
      10_000,
    );
    assert.equal(gw.pool.leasesOf(removedA), 0);
    await untilNoConnections(a);
    const summary = g.logs().find((l) => l.msg === 'config reloaded')!;
    assert.deepEqual(summary.keys, { added: ['new'], removed: ['old'], changed: [] });
    assert.ok(!JSON.stringify(g.logs()).includes(NEW_KEY), 'no key value in the logs');
  });

  it('a changed upstream gets a new object while its old one finishes the stream it runs', async () => {
    dir.write(reloadConfig({ upstreams: [openaiUpstream('a', a)] }));
    g = await startFileGateway(dir.file);
    const gw = g.gw;
    const oldA = gw.pool.get('a')!;
    const first = openStream(client(g.url, OLD_KEY));
    await until(() => a.held.size === 1, 'the first stream held');

    dir.write(reloadConfig({ upstreams: [openaiUpstream('a', a, { weight: 2 })] }));
    const result = await gw.reload();
    assert.deepEqual(result.upstreams, { added: [], removed: [], changed: ['a'] });
    const newA = gw.pool.get('a')!;
    assert.notEqual(newA, oldA);
    assert.equal(newA.weight, 2);

    const second = openStream(client(g.url, OLD_KEY));
    await until(() => a.held.size === 2, 'the second stream held');
    assert.equal(gw.pool.leasesOf(oldA), 1, 'the first stream stays on the old object');
    assert.equal(gw.pool.leasesOf(newA), 1, 'the second stream runs on the new object');
    a.release();
    assert.equal(await allCompleted([first, second]), 2);
    await until(
      () => g!.logs().filter((l) => l.msg === 'upstream drained and closed').length === 1,
      'the old object drained',
    );
    a.holding = false;
    assert.equal(await allCompleted([openStream(client(g.url, OLD_KEY))]), 1);
  });

  it('reloads run one at a time: calls made meanwhile share the next one', async () => {
    dir.write(reloadConfig({ upstreams: [openaiUpstream('a', a)] }));
    g = await startFileGateway(dir.file);
    const results = await Promise.all([g.gw.reload(), g.gw.reload(), g.gw.reload()]);
    assert.ok(results.every((r) => r.status === 'applied'));
    assert.notEqual(results[0], results[1]);
    assert.equal(results[1], results[2]);
    assert.equal(g.logs().filter((l) => l.msg === 'config reloaded').length, 2);
  });
});
