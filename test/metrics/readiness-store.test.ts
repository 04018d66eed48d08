/**
 * /readyz and the state store and shutdown: Redis reachable (`redis`), lost (`fallback`: still
 * ready, the process serves on its own state), and a draining gateway is unready.
 */
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startScripted, until, type ScriptedUpstream } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

interface Body {
  status: string;
  store: string;
  draining: boolean;
}

async function readyz(base: string): Promise<{ status: number; body: Body }> {
  const r = await fetch(`${base}/readyz`);
  return { status: r.status, body: (await r.json()) as Body };
}

describe('readiness: the state store and shutdown', () => {
  let up: ScriptedUpstream;
  before(async () => (up = await startScripted('up1')));
  after(async () => up?.close());

  const config = (extra: Record<string, unknown> = {}) =>
    gatewayConfig({
      metrics: { listen: '127.0.0.1:0' },
      upstreams: [{ name: 'up1', type: 'openai', baseUrl: `${up.url}/v1`, apiKey: upstreamKey('up1') }],
      ...extra,
    });

  describe('on Redis', () => {
    let redis: TestRedis;
    let gw: TestGateway;
    before(async () => {
      redis = await startRedis();
      gw = await startGateway(config({ state: { store: 'redis', url: redis.url } }));
    });
    after(async () => {
      await gw?.close();
      await redis?.close();
    });

    it('reports redis while it answers, fallback (still ready) once it is gone', async () => {
      assert.deepEqual(await readyz(gw.url), {
        status: 200,
        body: { status: 'ready', upstreams: { usable: 1, total: 1 }, store: 'redis', draining: false },
      } as never);
      await redis.kill();
      await until(() => gw.gw.readiness().store === 'fallback', 'the link noticed the loss', 5000);
      const last = await readyz(gw.url);
      assert.equal(last.body.store, 'fallback');
      assert.equal(last.status, 200);
      assert.equal(last.body.status, 'ready');
    });
  });

  it('turns 503 (draining) as soon as shutdown begins, on the metrics listener', async () => {
    const gw = await startGateway(config());
    const held = up.holdNext(5);
    const pending = fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: '{"model":"m","input":"x","stream":true}',
    });
    const stream = await held;
    const closing = gw.close(5000);
    await until(() => gw.gw.readiness().draining, 'shutdown began');
    const r = await readyz(gw.gw.metricsUrl!);
    assert.equal(r.status, 503);
    assert.equal(r.body.status, 'unready');
    assert.equal(r.body.draining, true);
    stream.finish();
    await (await pending).text();
    await closing;
  });
});
