/**
 * Selection policies are registered like upstream types (issue 12): `pool.strategy` names a built-in
 * policy or one a plugin registered in apply(); an unknown name is a located boot error that lists the
 * known ones.
 */
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { createGateway } from '../../app/gateway.js';
import { LogCapture, startGateway } from '../helpers/gateway.js';
import { proxyConfig } from '../helpers/proxy-config.js';
import { postJson } from '../helpers/raw.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const PLUGIN = new URL('../fixtures/plugins/last-policy.js', import.meta.url).pathname;

/** proxyConfig's YAML with `pool.strategy` and extra plugins. */
function withStrategy(urls: string[], strategy: string, plugins: string[] = []): string {
  const config = YAML.parse(proxyConfig(urls)) as Record<string, unknown> & { plugins: string[] };
  config.pool = { strategy, affinity: { enabled: false } };
  config.plugins = [...config.plugins, ...plugins];
  return YAML.stringify(config);
}

describe('selection policies', () => {
  const ups: TestUpstream[] = [];
  before(async () => {
    for (let i = 0; i < 3; i++)
      ups.push(
        await startUpstream((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id: `resp_${i}`, object: 'response', status: 'completed', output: [] }));
        }),
      );
  });
  after(async () => {
    for (const u of ups) await u.close();
  });

  it('a plugin registers one and pool.strategy names it: every request goes to the last upstream', async () => {
    const g = await startGateway(
      withStrategy(
        ups.map((u) => u.url),
        'last',
        [PLUGIN],
      ),
    );
    try {
      for (let i = 0; i < 6; i++) {
        const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'hi' });
        assert.equal(r.status, 200);
      }
      assert.deepEqual(
        ups.map((u) => u.requests.length),
        [0, 0, 6],
      );
    } finally {
      await g.close();
    }
  });

  it('an unknown strategy is a boot error at its line, naming the known ones', async () => {
    const yaml = withStrategy([ups[0]!.url], 'random-ish');
    const loaded = parseConfig(yaml, 'policies.yaml', { TAPGATE_TEST_KEY: 'sk-client-test-0123456789' });
    await assert.rejects(
      createGateway(loaded, { logDestination: new LogCapture() }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /policies\.yaml:\d+:\d+ pool\.strategy: unknown selection policy "random-ish"; known: round-robin, least-in-flight, fill-first/.test(
          err.message,
        ),
    );
  });

  it('a selectUpstream tap that picks an upstream outside the candidates (here: full) is overruled', async () => {
    const config = YAML.parse(proxyConfig(ups.slice(0, 2).map((u) => u.url))) as Record<string, unknown> & {
      plugins: string[];
      upstreams: Record<string, unknown>[];
    };
    config.upstreams[0]!.maxConcurrency = 1;
    config.plugins = [
      ...config.plugins,
      new URL('../fixtures/plugins/picks-outside.js', import.meta.url).pathname,
    ];
    const g = await startGateway(YAML.stringify(config));
    try {
      const before = ups.map((u) => u.requests.length);
      // up1's only slot is taken, so up1 is not a candidate: the tap's pick of it must not be used.
      assert.equal(g.gw.pool.acquire(g.gw.pool.upstreams[0]!), true);
      const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'hi' });
      assert.equal(r.status, 200);
      assert.deepEqual(
        ups.slice(0, 2).map((u, i) => u.requests.length - before[i]!),
        [0, 1],
      );
      g.gw.pool.release(g.gw.pool.upstreams[0]!);
    } finally {
      await g.close();
    }
  });
});
