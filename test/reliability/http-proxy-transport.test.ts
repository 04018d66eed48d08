/**
 * `proxy.transport: http-proxy-3`: the same Attempt, driven through http-proxy-3 instead of undici,
 * on a representative set of what the reliability suites check (the whole suites run on it with
 * TAPGATE_TEST_TRANSPORT=http-proxy-3; backpressure and the chunking property run on both here in CI):
 * happy JSON and SSE through the openai SDK, a first-byte timeout, an upstream that dies mid-stream,
 * a 429 that fails over, a client that leaves mid-stream, 1xx answers and a parser error; and a
 * reload that switches transports under a stream in flight.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import {
  FRAMES,
  JSON_BODY,
  jsonOk,
  PREFIX,
  resetMidStream,
  stallBeforeHeaders,
} from '../helpers/fault-upstream.js';
import { expectGatewayIdle, expectNoLeaks, handleBaseline } from '../helpers/handles.js';
import { Harness } from '../helpers/harness.js';
import {
  jsonError,
  openExchange,
  poolConfig,
  servedBy,
  until,
  type PoolUpstreamSpec,
} from '../helpers/pool.js';
import { deadline, parseSse, postJson } from '../helpers/raw.js';
import { happyStream } from '../helpers/upstream.js';
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
} from '../helpers/reload.js';

const h = new Harness();
const TRANSPORT = { transport: 'http-proxy-3' };
const STREAM_BODY = { model: 'gpt-test', stream: true, input: 'hi' };

async function gateway(upstreams: PoolUpstreamSpec[]): Promise<TestGateway> {
  return h.gatewayYaml(poolConfig(upstreams, { proxy: TRANSPORT }));
}

/** The request went out on http-proxy-3: the upstream's undici pool never connected, its agent did. */
function expectSentByHttpProxy(g: TestGateway, upstream: string): void {
  const connections = g.gw.pool.get(upstream)!.connections;
  assert.equal(connections.pool.stats.connected, 0, 'the undici pool connected');
  assert.ok(connections.sockets.size > 0, 'no socket from the keep-alive agent');
}

/** A loopback server that answers any request with these raw bytes. */
async function rawUpstream(bytes: string): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', () => socket.write(bytes));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return h.track({
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
}

describe('proxy.transport: http-proxy-3', function () {
  this.timeout(10_000);
  afterEach(() => h.cleanup());

  it('streams and answers JSON through the openai SDK, on one keep-alive connection, with only the prepared headers', async () => {
    const up = await h.fault('up');
    const g = await gateway([{ name: 'up', url: up.url }]);
    const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });

    const stream = await client.responses.create({ model: 'gpt-test', input: 'hi', stream: true });
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    assert.deepEqual(
      types,
      parseSse(happyStream().join('')).map((e) => e.event),
    );

    up.answer(jsonOk);
    const answer = await client.responses.create({ model: 'gpt-test', input: 'hi' });
    // The SDK adds its output_text convenience to what it read.
    assert.deepEqual(
      { ...answer, output_text: undefined },
      { ...JSON.parse(JSON_BODY), output_text: undefined },
    );
    assert.equal(answer.output_text, 'Hello!');

    expectSentByHttpProxy(g, 'up');
    assert.equal(up.exchanges.length, 2);
    const [first, second] = up.exchanges;
    assert.equal(
      first!.req.socket.remotePort,
      second!.req.socket.remotePort,
      'the connection was not reused',
    );
    const seen = first!.req.headers;
    assert.equal(seen.authorization, 'Bearer sk-upstream-up-secret');
    assert.equal(seen.connection, 'keep-alive');
    assert.equal(seen.host, new URL(up.url).host);
    assert.equal(seen['x-forwarded-for'], undefined);
    assert.equal(first!.req.url, '/v1/responses');
  });

  it('a stall before the headers → 504 after firstByte, the upstream request closed', async () => {
    const up = await h.fault('up');
    const g = await gateway([{ name: 'up', url: up.url, timeouts: { firstByte: '200ms' } }]);
    up.answer(stallBeforeHeaders);
    const r = await deadline(postJson(g.url, '/v1/responses', STREAM_BODY), 5000, 'answer');
    assert.equal(r.status, 504, r.text());
    assert.match(String((r.json().error as Record<string, unknown>).message), /Timed out waiting/);
    await deadline(up.exchanges[0]!.closed, 2000, 'the upstream side to close');
    await expectGatewayIdle(g.gw);
  });

  it('an upstream that dies mid-stream → the events so far, then response.failed "upstream connection lost"', async () => {
    const up = await h.fault('up');
    const g = await gateway([{ name: 'up', url: up.url }]);
    const base = await handleBaseline();
    up.answer(resetMidStream());
    const r = await deadline(postJson(g.url, '/v1/responses', STREAM_BODY), 5000, 'answer');
    assert.equal(r.status, 200);
    assert.equal(r.complete, true, 'the stream must end with its terminal event, not be cut');
    const events = parseSse(r.text());
    const before = FRAMES.slice(0, PREFIX).map((f) => parseSse(f)[0]!.event);
    assert.deepEqual(
      events.map((e) => e.event),
      [...before, 'error', 'response.failed'],
    );
    const failed = events.at(-1)!.json.response as Record<string, unknown>;
    assert.equal((failed.error as Record<string, unknown>).message, 'upstream connection lost');
    const logged = g.logs.find((l) => l.msg === 'request failed')!.error as Record<string, unknown>;
    assert.equal(logged.code, 'UPSTREAM_CONNECTION_LOST');
    await expectGatewayIdle(g.gw);
    up.closeIdle();
    await expectNoLeaks(base, 'after the upstream died mid-stream');
  });

  it('a 429 fails over to the next upstream, which serves the request', async () => {
    const limited = await h.scripted('limited');
    const spare = await h.scripted('spare');
    const g = await gateway([
      { name: 'limited', url: limited.url, priority: 0 },
      { name: 'spare', url: spare.url, priority: 1 },
    ]);
    limited.answer(jsonError(429, { error: { message: 'slow down', type: 'rate_limit_error' } }));
    const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
    assert.equal(r.status, 200, r.text());
    assert.equal(servedBy(r), 'spare');
    assert.equal(r.text(), happyStream('resp_spare').join(''));
    assert.equal(limited.requests.length, 1);
    expectSentByHttpProxy(g, 'spare');
  });

  it('a client that leaves mid-stream: the upstream request is closed at once, nothing leaks', async () => {
    const up = await h.scripted('up');
    const g = await gateway([{ name: 'up', url: up.url }]);
    const base = await handleBaseline();
    const held = up.holdNext(PREFIX);
    const ex = await openExchange(g.url, STREAM_BODY);
    const stream = await held;
    await ex.waitFor('response.output_text.delta');
    ex.socket.destroy();
    await deadline(stream.closed, 2000, 'the upstream request to close');
    await expectGatewayIdle(g.gw);
    await until(() => g.gw.pool.get('up')!.connections.sockets.size === 0, 'the upstream socket to close');
    await expectNoLeaks(base, 'after the client left');
  });

  it('a 101 to a plain request, or a 102 with nothing after it → 502 at once', async () => {
    for (const bytes of [
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      'HTTP/1.1 101 Switching Protocols\r\n\r\n',
      'HTTP/1.1 102 Processing\r\n\r\n',
    ]) {
      const up = await rawUpstream(bytes);
      const g = await gateway([{ name: 'up', url: up.url, timeouts: { firstByte: '60s' } }]);
      const r = await deadline(postJson(g.url, '/v1/responses', STREAM_BODY), 3000, bytes);
      assert.equal(r.status, 502, r.text());
      assert.match(
        String((r.json().error as Record<string, unknown>).message),
        /^upstream answered HTTP 10[12]/,
      );
      await expectGatewayIdle(g.gw);
    }
  });

  it('a response the HTTP parser refuses → 502 naming the parser error', async () => {
    const up = await rawUpstream('HELLO THERE\r\n\r\n');
    const g = await gateway([{ name: 'up', url: up.url }]);
    const r = await postJson(g.url, '/v1/responses', { ...STREAM_BODY, stream: false });
    assert.equal(r.status, 502, r.text());
    assert.match(
      String((r.json().error as Record<string, unknown>).message),
      /^upstream sent a malformed HTTP response \(HPE_[A-Z_]+\)$/,
    );
    await expectGatewayIdle(g.gw);
  });

  it('a reload switches the transport for new attempts; a stream in flight ends on the one it started on', async () => {
    const dir = new ConfigDir();
    const up = h.track(await startHoldingUpstream());
    const config = (transport: string) =>
      reloadConfig({ proxy: { transport }, upstreams: [openaiUpstream('up', up)] });
    dir.write(config('undici'));
    const g = await startFileGateway(dir.file);
    try {
      const c = client(g.url, OLD_KEY);
      const first = openStream(c);
      await until(() => up.held.size === 1, 'the first stream to be held upstream');
      const connections = g.gw.pool.get('up')!.connections;
      assert.equal(connections.pool.stats.running, 1);

      dir.write(config('http-proxy-3'));
      assert.equal((await g.gw.reload()).status, 'applied');
      assert.equal(g.gw.pool.get('up')!.connections, connections, 'the upstream was rebuilt');
      const second = openStream(c);
      await until(() => up.held.size === 2, 'the second stream to be held upstream');
      assert.equal(connections.pool.stats.running, 1, 'the second stream went out on undici');
      assert.equal(connections.busy, 2, "the agent's socket is not in use");

      up.holding = false;
      up.release();
      assert.equal(await allCompleted([first, second]), 2);
      dir.write(config('undici'));
      assert.equal((await g.gw.reload()).status, 'applied');
      assert.equal(await allCompleted([openStream(c)]), 1);
    } finally {
      // Nothing stays held if an assertion failed: the gateway's close would wait for it.
      up.holding = false;
      up.release();
      await g.close();
      dir.remove();
    }
  });
});
