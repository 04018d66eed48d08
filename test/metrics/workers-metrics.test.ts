/**
 * `server.workers: 2` with the real binary: the primary serves metrics.listen with both workers'
 * series added up, and /metrics on the main port (metrics.token), answered by either worker, gives
 * the same cluster totals.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { scrape } from '../helpers/metrics.js';
import { until } from '../helpers/pool.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'metrics-token-workers-0123456789';

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('metrics with server.workers: 2 (cluster totals)', function () {
  this.timeout(30_000);
  let dir: string;
  let upstream: TestUpstream;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-metrics-workers-'));
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_w', object: 'response', status: 'completed', output: [] }));
    });
  });
  after(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds up both workers’ requests on the primary’s listener and on the main port', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      `server: { host: 127.0.0.1, port: ${port}, workers: 2 }\n` +
        `usage: { enabled: false }\n` +
        `metrics: { listen: "127.0.0.1:${metricsPort}", token: ${TOKEN} }\n` +
        `upstreams: [{ name: up, type: openai, baseUrl: "${upstream.url}/v1", apiKey: sk-upstream-key-1 }]\n` +
        `plugins: [responses-routes]\n`,
    );
    const cli = runCli(['--config', file]);
    try {
      await until(
        () => (cli.stdout().match(/"msg":"tapgate listening"/g) ?? []).length === 2,
        'both workers listen',
        20_000,
      );
      const N = 20;
      for (let i = 0; i < N; i++) {
        // A new connection each time, so the kernel may hand them to either worker.
        const r = await fetch(`http://127.0.0.1:${port}/v1/responses`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: '{"model":"m","input":"x"}',
        });
        assert.equal(r.status, 200);
        await r.text();
      }
      const labels = { route: 'responses', status_class: '2xx', outcome: 'ok', upstream: 'up' };
      const listener = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(listener.value('tapgate_requests_total', labels), N);
      assert.equal(listener.value('tapgate_request_duration_seconds', { upstream: 'up' }), N);
      // Gauges of the state kind are the max across workers, slots the sum.
      assert.equal(listener.value('tapgate_upstream_state', { upstream: 'up', state: 'ok' }), 1);
      for (let i = 0; i < 3; i++) {
        const main = await scrape(`http://127.0.0.1:${port}/metrics`, TOKEN);
        assert.equal(main.value('tapgate_requests_total', labels), N);
      }
      const unauth = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(unauth.status, 401);
      await unauth.text();
      const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), {
        status: 'ready',
        upstreams: { usable: 1, total: 1 },
        store: 'memory',
        draining: false,
      });
    } finally {
      cli.child.kill('SIGTERM');
      await cli.closed;
    }
  });

  it('an explicit metrics.listen already in use stops the boot, naming metrics.listen', async () => {
    const busy = net.createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const taken = (busy.address() as net.AddressInfo).port;
    const file = join(dir, 'busy.yaml');
    writeFileSync(
      file,
      `server: { host: 127.0.0.1, port: ${await freePort()} }\nusage: { enabled: false }\n` +
        `metrics:\n  listen: "127.0.0.1:${taken}"\n` +
        `upstreams: [{ name: up, type: openai, baseUrl: "${upstream.url}/v1", apiKey: sk-upstream-key-1 }]\n`,
    );
    try {
      const cli = runCli(['--config', file]);
      const { code } = await cli.closed;
      assert.equal(code, 1);
      assert.match(cli.stderr(), /:4:\d+ metrics\.listen: 127\.0\.0\.1:\d+ is already in use/);
    } finally {
      busy.close();
    }
  });
});
