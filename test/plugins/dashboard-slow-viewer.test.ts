/**
 * plugin dashboard, a viewer that stops reading: what the gateway holds for it stays under
 * `maxBufferedBytes` (plus one message), it is dropped once past it, and meanwhile every proxied
 * request completes and the other viewers keep getting the feed.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { dashboardConfig, openFeed, openStalledViewer, type FeedRequest } from '../helpers/dashboard-feed.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const LIMIT = 64 * 1024;
/** Long enough to make each request's record weigh something in the feed. */
const MODEL = 'gpt-test-' + 'm'.repeat(100);
const BODY = JSON.stringify({ model: MODEL, stream: true, input: 'hi' });
/** Traffic stops here if the viewer was never dropped (the kernel buffers a few MB first). */
const MAX_REQUESTS = 60_000;
const CONCURRENCY = 32;

describe('plugin dashboard: a viewer that stops reading', function () {
  this.timeout(120_000);
  let up: TestUpstream;
  let g: TestGateway;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  before(async () => {
    up = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.end(happyStream().join(''));
    });
    g = await startGateway(
      dashboardConfig({
        upstreams: [{ name: 'up1', baseUrl: `${up.url}/v1`, apiKey: 'sk-upstream-slow-secret' }],
        dashboard: { maxBufferedBytes: '64kb', batchMs: 10 },
      }),
    );
  });
  after(async () => {
    agent.destroy();
    await g.close();
    await up.close();
  });

  /** One proxied request on a keep-alive connection; resolves with its status once the body ended. */
  function send(id: string): Promise<number> {
    const url = new URL(g.url);
    return new Promise((resolve, reject) => {
      const req = http.request({
        method: 'POST',
        hostname: url.hostname,
        port: url.port,
        path: '/v1/responses',
        agent,
        headers: {
          authorization: `Bearer ${CLIENT_KEY}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(BODY),
          'x-request-id': id,
        },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          text.includes('response.completed')
            ? resolve(res.statusCode ?? 0)
            : reject(new Error(`incomplete: ${text}`)),
        );
        res.on('error', reject);
      });
      req.end(BODY);
    });
  }

  it('is dropped past maxBufferedBytes, holding no more than that, while every request completes', async () => {
    // The gateway's end of the stalled viewer's connection, found by its marker header.
    let serverSide: Duplex | undefined;
    g.gw.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
      if (req.headers['x-test-viewer'] === 'stalled') serverSide = socket;
    });
    const healthy = await openFeed(g.url);
    await healthy.message((m) => m.type === 'snapshot');
    const stalled = await openStalledViewer(g.url, 'stalled');
    assert.ok(serverSide !== undefined, 'the gateway end of the stalled viewer');
    const gatewayEnd = serverSide as Duplex & { writableLength: number };
    let dropped = false;
    const droppedAt = new Promise<void>((resolve) =>
      gatewayEnd.once('close', () => {
        dropped = true;
        resolve();
      }),
    );

    let sent = 0;
    let ok = 0;
    let maxHeld = 0;
    const failures: string[] = [];
    const worker = async () => {
      while (!dropped && sent < MAX_REQUESTS) {
        const id = `slow-${++sent}`;
        try {
          const status = await send(id);
          if (status === 200) ok++;
          else failures.push(`${id}: ${status}`);
        } catch (err) {
          failures.push(`${id}: ${(err as Error).message}`);
        }
        maxHeld = Math.max(maxHeld, gatewayEnd.writableLength);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.ok(dropped, `the stalled viewer was not dropped after ${sent} requests`);
    await droppedAt;
    assert.deepEqual(failures, []);
    assert.equal(ok, sent);

    // What the gateway held for it never went past the bound plus one message.
    const largest = Math.max(...healthy.raw.map((t) => Buffer.byteLength(t)));
    assert.ok(maxHeld <= LIMIT + largest + 16, `held ${maxHeld} bytes (largest message ${largest})`);
    const dropLog = g.logs.find((l) => l.msg === 'dashboard viewer too slow: dropped');
    assert.ok(dropLog !== undefined, 'the drop is logged');
    assert.ok((dropLog.bufferedBytes as number) > LIMIT);
    assert.ok((dropLog.bufferedBytes as number) <= LIMIT + largest + 16);

    // The healthy viewer saw every request, and keeps getting the feed after the drop.
    await healthy.until(
      (s) => s.totals!.requests === sent,
      `the healthy viewer's totals reach ${sent}`,
      10_000,
    );
    assert.equal(await send('after-drop'), 200);
    await healthy.message(
      (m) =>
        m.type === 'delta' &&
        (m.requests as FeedRequest[]).some((r) => r.id === 'after-drop' && r.state === 'ok'),
      5000,
    );
    await healthy.close();
    stalled.destroy();
  });
});
