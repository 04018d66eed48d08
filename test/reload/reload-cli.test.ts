/**
 * Reload through the real binary (`node app/bin.js --config f`): SIGHUP, and `--watch` (the file
 * replaced by rename, as editors do), each with 100 streams open on the upstream being removed;
 * and with `server.workers: 2`, a SIGHUP to the primary reloads both workers.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { killStrayClis, runCli, type Cli } from '../helpers/cli.js';
import { until } from '../helpers/pool.js';
import { freePort } from '../helpers/redis.js';
import {
  allCompleted,
  client,
  ConfigDir,
  NEW_KEY,
  OLD_KEY,
  openaiUpstream,
  openStream,
  reloadConfig,
  startHoldingUpstream,
  STAY_KEY,
  untilNoConnections,
  type HoldingUpstream,
} from '../helpers/reload.js';

const STREAMS = 100;

function linesOf(cli: Cli, msg: string): Record<string, unknown>[] {
  return cli
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

describe('reload through the binary', function () {
  this.timeout(90_000);
  let dir: ConfigDir;
  let a: HoldingUpstream;
  let b: HoldingUpstream;
  let c: HoldingUpstream;

  beforeEach(async () => {
    dir = new ConfigDir();
    [a, b, c] = await Promise.all([startHoldingUpstream(), startHoldingUpstream(), startHoldingUpstream()]);
    b.holding = false;
    c.holding = false;
  });
  afterEach(async () => {
    killStrayClis();
    await Promise.all([a.close(), b.close(), c.close()]);
    dir.remove();
  });

  const before = () =>
    reloadConfig({
      upstreams: [openaiUpstream('a', a), openaiUpstream('b', b, { models: ['other-model'] })],
    });
  const after = () =>
    reloadConfig({
      keys: [
        { name: 'new', key: NEW_KEY },
        { name: 'stay', key: STAY_KEY },
      ],
      upstreams: [openaiUpstream('b', b, { models: ['other-model'] }), openaiUpstream('c', c)],
    });

  for (const trigger of ['SIGHUP', '--watch'] as const) {
    it(`${trigger}: 100 streams finish on the removed upstream, new requests use the new config`, async () => {
      dir.write(before());
      const cli = runCli(['--config', dir.file, ...(trigger === '--watch' ? ['--watch'] : [])]);
      const url = `http://127.0.0.1:${String((await cli.logLine('tapgate listening')).port)}`;
      if (trigger === '--watch') await cli.logLine('watching the config file: a change reloads it');

      const old = client(url, OLD_KEY);
      const streams = Array.from({ length: STREAMS }, () => openStream(old));
      await until(() => a.held.size === STREAMS, `${STREAMS} streams held on a`, 30_000);

      dir.write(after());
      if (trigger === 'SIGHUP') cli.child.kill('SIGHUP');
      const reloaded = await cli.logLine('config reloaded');
      assert.deepEqual(reloaded.upstreams, { added: ['c'], removed: ['a'], changed: [] });
      assert.deepEqual(reloaded.keys, { added: ['new'], removed: ['old'], changed: [] });

      const served = a.requests.length;
      assert.equal(await allCompleted([openStream(client(url, NEW_KEY))]), 1);
      assert.equal(c.requests.length, 1);
      assert.equal(a.requests.length, served, 'nothing new on the removed upstream');
      await assert.rejects(openStream(old).done, (e: unknown) => e instanceof OpenAI.AuthenticationError);

      assert.equal(a.held.size, STREAMS, 'no stream was cut by the reload');
      a.release();
      assert.equal(await allCompleted(streams), STREAMS);
      const drained = await cli.logLine('upstream drained and closed');
      assert.equal(drained.upstream, 'a');
      await untilNoConnections(a);

      cli.child.kill('SIGTERM');
      assert.equal((await cli.closed).code, 0);
    });
  }

  it('server.workers: 2: a SIGHUP to the primary reloads every worker', async () => {
    const port = await freePort();
    const server = { host: '127.0.0.1', port, workers: 2 };
    dir.write(reloadConfig({ server, upstreams: [openaiUpstream('c', c)] }));
    const cli = runCli(['--config', dir.file]);
    await until(() => linesOf(cli, 'tapgate listening').length === 2, 'two workers listening', 30_000);
    const url = `http://127.0.0.1:${port}`;
    await assert.rejects(
      openStream(client(url, NEW_KEY)).done,
      (e: unknown) => e instanceof OpenAI.AuthenticationError,
    );

    dir.write(
      reloadConfig({
        server,
        keys: [{ name: 'new', key: NEW_KEY }],
        upstreams: [openaiUpstream('c', c)],
      }),
    );
    cli.child.kill('SIGHUP');
    await until(() => linesOf(cli, 'config reloaded').length === 2, 'both workers reloaded', 30_000);
    assert.equal(linesOf(cli, 'reloading the config in every worker')[0]!.workers, 2);
    // Whichever worker takes them, the new key is accepted and the old one refused.
    const requests = 6;
    for (let i = 0; i < requests; i++) {
      assert.equal(await allCompleted([openStream(client(url, NEW_KEY))]), 1);
      await assert.rejects(
        openStream(client(url, OLD_KEY)).done,
        (e: unknown) => e instanceof OpenAI.AuthenticationError,
      );
    }

    // A config a worker refuses is logged by each, and both keep serving.
    dir.write(reloadConfig({ server: { ...server, port: port + 1 }, upstreams: [openaiUpstream('c', c)] }));
    cli.child.kill('SIGHUP');
    await until(
      () => linesOf(cli, 'config reload refused: nothing changed, the old config keeps serving').length === 2,
      'both workers refused',
      30_000,
    );
    assert.equal(await allCompleted([openStream(client(url, NEW_KEY))]), 1);

    cli.child.kill('SIGTERM');
    assert.equal((await cli.closed).code, 0);
  });
});
