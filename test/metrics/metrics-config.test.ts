/**
 * The `metrics` section: defaults, a listen address checked at load with its key path and line,
 * the token kept as a secret, and the default listener taken (another instance): a warning, not a
 * failed boot.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { Secrets } from '../../core/observe/secrets.js';
import { startGateway } from '../helpers/gateway.js';
import { startScripted, type ScriptedUpstream } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';

describe('config: metrics', () => {
  it('is on by default, on the default listener, at /metrics, without a token', () => {
    const { config } = parseConfig('upstreams: []\n', 'c.yaml', {});
    assert.deepEqual(config.metrics, { enabled: true, path: '/metrics' });
  });

  for (const [listen, ok] of [
    ['127.0.0.1:9464', true],
    ['0.0.0.0:0', true],
    ['"[::1]:9464"', true],
    ['localhost:9100', true],
    ["''", true],
    ['false', true],
    ['9464', false],
    ['127.0.0.1:70000', false],
    ['http://127.0.0.1:9464', false],
    ['true', false],
  ] as const) {
    it(`listen ${listen}: ${ok ? 'accepted' : 'refused with its key path and line'}`, () => {
      const yaml = `upstreams: []\nmetrics:\n  listen: ${listen}\n`;
      if (ok) {
        parseConfig(yaml, 'c.yaml', {});
        return;
      }
      let err: unknown;
      try {
        parseConfig(yaml, 'c.yaml', {});
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, /c\.yaml:3:\d+ metrics\.listen: /);
    });
  }

  it('refuses a short token, and keeps a token out of text as a secret', () => {
    assert.throws(
      () => parseConfig('metrics: { token: short }\n', 'c.yaml', {}),
      /metrics\.token: a metrics token needs at least 16 characters/,
    );
    const { config } = parseConfig('metrics: { token: "${T}" }\n', 'c.yaml', {
      T: 'metrics-secret-abcdef0123',
    });
    const secrets = new Secrets(config);
    assert.doesNotMatch(secrets.scrub('saw metrics-secret-abcdef0123 here'), /metrics-secret/);
  });

  describe('the default listener already taken', () => {
    let up: ScriptedUpstream;
    let holder: net.Server | undefined;
    before(async () => {
      up = await startScripted('up1');
      // Taken by this test, or already by someone else: either way the gateway finds it in use.
      holder = net.createServer();
      holder.listen(9464, '127.0.0.1');
      const [outcome] = await Promise.race([once(holder, 'listening'), once(holder, 'error')]);
      if (outcome instanceof Error) holder = undefined;
    });
    after(async () => {
      holder?.close();
      await up?.close();
    });

    it('is skipped with a warning; the gateway serves', async () => {
      const gw = await startGateway(
        gatewayConfig({
          metrics: { enabled: true },
          upstreams: [{ name: 'up1', type: 'openai', baseUrl: `${up.url}/v1`, apiKey: upstreamKey('up1') }],
        }),
      );
      try {
        assert.equal(gw.gw.metricsUrl, undefined);
        const warning = gw.logs.find((l) => String(l.msg).startsWith('metrics listener not started'));
        assert.ok(warning, 'a warning says why');
        assert.equal(warning.listen, '127.0.0.1:9464');
        assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
      } finally {
        await gw.close();
      }
    });
  });
});
