/**
 * /healthz and /readyz: on the main port (no client key, before plugin routes) and on the metrics
 * listener; unready when every upstream is disabled, ready again once one is enabled; counts only.
 */
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startScripted, type ScriptedUpstream } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';

describe('health: /healthz and /readyz', () => {
  let up: ScriptedUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startScripted('acct-secret-name');
    gw = await startGateway(
      gatewayConfig({
        metrics: { listen: '127.0.0.1:0' },
        upstreams: ['acct-secret-name', 'other-acct'].map((name) => ({
          name,
          type: 'openai',
          baseUrl: `${up.url}/v1`,
          apiKey: upstreamKey(name),
        })),
        log: { level: 'debug' },
      }),
    );
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const get = async (base: string, path: string) => {
    const r = await fetch(base + path);
    return { status: r.status, text: await r.text() };
  };

  it('/healthz answers 200 without a client key, on both ports', async () => {
    for (const base of [gw.url, gw.gw.metricsUrl!]) {
      const r = await get(base, '/healthz');
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.text), { status: 'ok' });
    }
  });

  it('/readyz turns 503 when every upstream is disabled and 200 after an enable; counts only', async () => {
    const state = gw.gw.pool.state;
    const ready = await get(gw.url, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.text), {
      status: 'ready',
      upstreams: { usable: 2, total: 2 },
      store: 'memory',
      draining: false,
    });
    state.disable('acct-secret-name', 'operator said so');
    state.disable('other-acct', 'operator said so');
    for (const base of [gw.url, gw.gw.metricsUrl!]) {
      const r = await get(base, '/readyz');
      assert.equal(r.status, 503);
      assert.deepEqual(JSON.parse(r.text), {
        status: 'unready',
        upstreams: { usable: 0, total: 2 },
        store: 'memory',
        draining: false,
      });
      assert.doesNotMatch(r.text, /acct|operator/);
    }
    state.enable('other-acct');
    const again = await get(gw.url, '/readyz');
    assert.equal(again.status, 200);
    assert.equal((JSON.parse(again.text) as { upstreams: { usable: number } }).upstreams.usable, 1);
    state.enable('acct-secret-name');
  });

  it('an account-wide rate limit makes an upstream unusable; a transient cooldown does not', async () => {
    const state = gw.gw.pool.state;
    const until = Date.now() + 60_000;
    state.cool('acct-secret-name', undefined, until, 'slow down', 'rate_limit');
    state.cool('other-acct', undefined, until, 'a 502', 'transient');
    const r = JSON.parse((await get(gw.url, '/readyz')).text) as { upstreams: { usable: number } };
    assert.equal(r.upstreams.usable, 1);
    state.clearCooldown('acct-secret-name', undefined);
    state.clearCooldown('other-acct', undefined);
  });

  it('is not a proxied request: no access line, a debug line instead; other methods get 405', async () => {
    const before = gw.logs.length;
    await get(gw.url, '/healthz?probe=1');
    const lines = gw.logs.slice(before);
    assert.ok(!lines.some((l) => l.msg === 'request' || l.msg === 'request failed'));
    assert.ok(lines.some((l) => l.msg === 'ops endpoint' && l.endpoint === 'healthz'));
    const post = await fetch(`${gw.url}/readyz`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  });

  it('without metrics.token the main port has no /metrics (the pipeline answers: 401 without a key)', async () => {
    const r = await get(gw.url, '/metrics');
    assert.equal(r.status, 401);
    assert.equal((await get(gw.gw.metricsUrl!, '/metrics')).status, 200);
    assert.equal((await get(gw.gw.metricsUrl!, '/v1/responses')).status, 404);
  });
});
