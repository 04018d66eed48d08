/**
 * Issue 13: the `state` section. Strict like every section (errors name the key path and line), the
 * Redis password never said, and `keyPrefix` keeping two deployments on one Redis apart.
 */
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { freePort, startRedis } from '../helpers/redis.js';
import { registerSecret } from '../helpers/secret-scan.js';

function issues(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(yaml, 'config.yaml', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').slice(1);
  }
  assert.fail('expected the config to be refused');
}

describe('state config', () => {
  const h = Harness.perTest();

  it('defaults to the in-memory store', () => {
    const { config } = parseConfig('', 'config.yaml', {});
    assert.deepEqual(config.state, {
      store: 'memory',
      keyPrefix: 'tapgate:',
      timeout: 250,
      leaseTtl: 10_000,
    });
  });

  it('reads a redis store from the environment', () => {
    const { config } = parseConfig(
      'state:\n  store: redis\n  url: ${REDIS_URL}\n  timeout: 1s\n',
      'config.yaml',
      {
        REDIS_URL: 'rediss://user:pw@redis.internal:6380/2',
      },
    );
    assert.equal(config.state.url, 'rediss://user:pw@redis.internal:6380/2');
    assert.equal(config.state.timeout, 1000);
  });

  it('names each mistake with its key path and line', () => {
    assert.deepEqual(issues('state:\n  store: redis\n'), [
      '  - config.yaml:2:10 state.store: store: redis needs state.url (redis://host:port)',
    ]);
    assert.deepEqual(issues('state:\n  url: redis://127.0.0.1:6379\n'), [
      '  - config.yaml:2:8 state.url: state.url is set but state.store is memory: set store: redis to use it',
    ]);
    assert.deepEqual(issues('state:\n  store: redis\n  url: http://127.0.0.1:6379\n'), [
      '  - config.yaml:3:8 state.url: expected a redis:// or rediss:// URL',
    ]);
    assert.deepEqual(issues('state:\n  store: postgres\n'), [
      '  - config.yaml:2:10 state.store: Invalid option: expected one of "memory"|"redis"',
    ]);
    assert.match(
      issues('state:\n  store: redis\n  url: redis://h:1\n  prefix: x\n')[0]!,
      /config\.yaml:4:3 state\.prefix: unknown key/,
    );
    assert.match(
      issues('state:\n  store: redis\n  url: redis://h:1\n  leaseTtl: 100ms\n')[0]!,
      /config\.yaml:4:13 state\.leaseTtl: at least 1s/,
    );
    assert.match(
      issues('state:\n  store: redis\n  url: redis://h:1\n  keyPrefix: "a b"\n')[0]!,
      /state\.keyPrefix: letters, digits/,
    );
    assert.deepEqual(issues('state:\n  store: redis\n  url: ${REDIS_URL}\n'), [
      '  - config.yaml:3:8 state.url: environment variable REDIS_URL is not set',
    ]);
  });

  it('the Redis password is used but never said, and a wrong one is reported without it', async () => {
    const password = 'redis-pass-7f3a9c1e';
    registerSecret(password);
    const redis = h.track(await startRedis(undefined, password));
    const X = await h.scripted('X');
    const yaml = (url: string) =>
      gatewayConfig({
        state: { store: 'redis', url },
        upstreams: [{ name: 'X', type: 'openai', baseUrl: X.url + '/v1', apiKey: upstreamKey('X') }],
      });
    const A = await h.gatewayYaml(yaml(redis.url));
    assert.ok(
      A.logs.some((l) => l.msg === 'shared state on Redis' && l.redis === `redis://127.0.0.1:${redis.port}`),
    );
    const wrong = 'wrong-pass-0a1b2c3d';
    registerSecret(wrong);
    const B = await h.gatewayYaml(yaml(`redis://:${wrong}@127.0.0.1:${redis.port}`));
    const refused = B.logs.find((l) => String(l.msg).startsWith('Redis unreachable at boot'));
    assert.match(String(refused?.reason), /WRONGPASS/);
    for (const g of [A, B]) {
      assert.ok(!g.rawLogs().includes(password));
      assert.ok(!g.rawLogs().includes(wrong));
    }
  });

  it('two keyPrefixes on one Redis share nothing', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const yaml = (keyPrefix: string) =>
      gatewayConfig({
        state: { store: 'redis', url: redis.url, keyPrefix },
        upstreams: [{ name: 'X', type: 'openai', baseUrl: X.url + '/v1', apiKey: upstreamKey('X') }],
      });
    const A = await h.gatewayYaml(yaml('team-a:'));
    const A2 = await h.gatewayYaml(yaml('team-a:'));
    const B = await h.gatewayYaml(yaml('team-b:'));
    A.gw.pool.state.disable('X', 'off for team a');
    await until(() => A2.gw.pool.state.disabled('X') !== undefined, 'the same prefix shares');
    assert.equal(B.gw.pool.state.disabled('X'), undefined);
    assert.equal(await redis.client.exists('team-a:disabled:X'), 1);
    assert.equal(await redis.client.exists('team-b:disabled:X'), 0);
  });

  it('an unreachable Redis at boot does not delay the start beyond a few seconds', async () => {
    const port = await freePort();
    const X = await h.scripted('X');
    const started = performance.now();
    const A = await h.gatewayYaml(
      gatewayConfig({
        state: { store: 'redis', url: `redis://127.0.0.1:${port}` },
        upstreams: [{ name: 'X', type: 'openai', baseUrl: X.url + '/v1', apiKey: upstreamKey('X') }],
      }),
    );
    assert.ok(performance.now() - started < 3000);
    assert.equal(A.logs.find((l) => String(l.msg).startsWith('Redis unreachable'))?.level, 40);
  });
});
