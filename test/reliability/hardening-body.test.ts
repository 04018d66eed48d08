/**
 * Hardening (issue 11), items 1 and 2: a request body costs what its bytes cost.
 *
 * 1. Deeply nested JSON, and JSON of millions of tiny values: refused with a clear 400 after one
 *    linear scan, before JSON.parse (server.maxJsonDepth, server.maxJsonValues), without blocking the
 *    event loop; a body that is JSON but no object is refused unparsed.
 * 2. A body sent as very many small chunks: memory follows its bytes, not its chunk count (no
 *    per-chunk objects are kept), and a body of absurdly many tiny chunks is refused early.
 *
 * Event-loop blocking is read with perf_hooks.monitorEventLoopDelay in this process, which runs the
 * gateway; memory with process.memoryUsage() after a full GC (mocha runs with --expose-gc).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { until } from '../helpers/pool.js';
import { connectRaw, deadline, parseHttpResponse, postJson, readToEnd } from '../helpers/raw.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const MB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

let up: TestUpstream;
let g: TestGateway;

/** Longest event-loop stall, in ms, while `fn` runs. */
async function maxLoopDelay<T>(fn: () => Promise<T>): Promise<{ out: T; stallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  try {
    const out = await fn();
    return { out, stallMs: h.max / 1e6 };
  } finally {
    h.disable();
  }
}

/** The request head of an authenticated JSON POST to /v1/responses. */
function head(length: number | 'chunked'): string {
  return (
    `POST /v1/responses HTTP/1.1\r\nhost: tapgate\r\nconnection: close\r\n` +
    `authorization: Bearer ${CLIENT_KEY}\r\ncontent-type: application/json\r\n` +
    (length === 'chunked' ? 'transfer-encoding: chunked\r\n' : `content-length: ${length}\r\n`) +
    '\r\n'
  );
}

/** One raw chunked request: `frames` written as they come (errors after a refusal are expected). */
async function sendChunked(frames: Buffer[]): Promise<{ socket: Socket; answer: Promise<Buffer> }> {
  const socket = await connectRaw(g.url);
  const answer = deadline(readToEnd(socket), 15_000, 'the answer to a chunked upload');
  socket.write(head('chunked'));
  for (const f of frames) socket.write(f);
  return { socket, answer };
}

/** `n` chunks of `size` bytes, each `<hex>\r\n<bytes>\r\n`, carrying `text` (n × size bytes long). */
function chunkFrames(text: string, size: number): Buffer {
  const frame = size.toString(16).length + 2 + size + 2;
  const out = Buffer.allocUnsafe((text.length / size) * frame);
  for (let i = 0, at = 0; i < text.length; i += size)
    at += out.write(`${size.toString(16)}\r\n${text.slice(i, i + size)}\r\n`, at, 'latin1');
  return out;
}

/** A JSON request body of exactly `bytes` bytes. */
function bodyOf(bytes: number): string {
  const start = '{"model":"gpt-test","input":"';
  return start + 'x'.repeat(bytes - start.length - 2) + '"}';
}

/** 400 invalid_request_error with this message, and the upstream was not asked. */
function assertRefused(status: number, text: string, message: RegExp): void {
  assert.equal(status, 400, text.slice(0, 300));
  const error = (JSON.parse(text) as { error: Record<string, unknown> }).error;
  assert.equal(error.type, 'invalid_request_error', text);
  assert.equal(error.code, 'invalid_request', text);
  assert.match(String(error.message), message);
  assert.equal(up.requests.length, 0, 'nothing reaches the upstream');
}

async function assertServes(): Promise<void> {
  const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'after' });
  assert.equal(r.status, 200, r.text());
  await until(() => g.gw.inflight === 0, 'in-flight requests back to 0');
}

/** `{"a":` + `depth - 1` nested arrays + `}`: the top-level object is level 1. */
function nested(depth: number): string {
  return `{"model":"gpt-test","a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
}

describe('reliability: hardening, request bodies (issue 11 items 1-2)', function () {
  this.timeout(30_000);

  before(async () => {
    up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"resp_1","object":"response","status":"completed","output":[]}');
    });
    g = await startGateway(basicConfig(up.url));
  });
  after(async () => {
    await g.close();
    await up.close();
  });
  beforeEach(() => {
    up.requests.length = 0;
  });

  describe('item 1: nesting and value count are bounded before JSON.parse', () => {
    it('a 3e6-deep array inside an object (6 MB): 400 naming server.maxJsonDepth, no stall', async () => {
      const body = nested(3_000_000);
      const { out: r, stallMs } = await maxLoopDelay(() => postJson(g.url, '/v1/responses', body));
      assertRefused(
        r.status,
        r.text(),
        /^Request body nests JSON deeper than 128 levels \(server\.maxJsonDepth\)$/,
      );
      // JSON.parse of this body blocks the loop ~2 s; the scan stops at the 129th bracket.
      assert.ok(stallMs < 500, `event loop stalled ${stallMs.toFixed(0)} ms`);
      await assertServes();
    });

    it('a 3e6-deep top-level array: 400 "must be a JSON object" without parsing it', async () => {
      const body = '['.repeat(3_000_000) + ']'.repeat(3_000_000);
      const { out: r, stallMs } = await maxLoopDelay(() => postJson(g.url, '/v1/responses', body));
      assertRefused(r.status, r.text(), /^Request body must be a JSON object$/);
      assert.ok(stallMs < 500, `event loop stalled ${stallMs.toFixed(0)} ms`);
      await assertServes();
    });

    it('depth 128 (the default limit) is proxied; depth 129 is refused', async () => {
      const ok = await postJson(g.url, '/v1/responses', nested(128));
      assert.equal(ok.status, 200, ok.text());
      assert.equal(up.requests.length, 1);
      assert.equal(up.requests[0]!.body.toString(), nested(128), 'the body goes upstream as sent');
      up.requests.length = 0;
      const deep = await postJson(g.url, '/v1/responses', nested(129));
      assertRefused(deep.status, deep.text(), /deeper than 128 levels/);
    });

    it('1.5M tiny values (4.5 MB of {}): 400 naming server.maxJsonValues, no stall', async () => {
      const body = `{"model":"gpt-test","a":[${'{},'.repeat(1_500_000)}{}]}`;
      const { out: r, stallMs } = await maxLoopDelay(() => postJson(g.url, '/v1/responses', body));
      assertRefused(
        r.status,
        r.text(),
        /^Request body has more than 1000000 JSON values \(server\.maxJsonValues\)$/,
      );
      // JSON.parse of it takes ~1 s and ~150 MB; the scan stops at the 1,000,001st value.
      assert.ok(stallMs < 500, `event loop stalled ${stallMs.toFixed(0)} ms`);
      await assertServes();
    });

    it('the limits are settings: at maxJsonValues passes, one more is refused; maxJsonDepth too', async () => {
      const own = await startGateway(
        basicConfig(up.url).replace('  port: 0\n', '  port: 0\n  maxJsonDepth: 3\n  maxJsonValues: 6\n'),
      );
      try {
        // The object, model, input and its two elements, a: 6 values; a comma or element more is 7.
        const six = '{"model":"gpt-test","input":[1,[]],"a":{}}';
        const seven = '{"model":"gpt-test","input":[1,[2]],"a":{}}';
        const r6 = await postJson(own.url, '/v1/responses', six);
        assert.equal(r6.status, 200, r6.text());
        const r7 = await postJson(own.url, '/v1/responses', seven);
        assert.equal(r7.status, 400, r7.text());
        assert.match(r7.text(), /more than 6 JSON values \(server\.maxJsonValues\)/);
        const deep = await postJson(own.url, '/v1/responses', '{"model":"gpt-test","input":[[[]]]}');
        assert.equal(deep.status, 400, deep.text());
        assert.match(deep.text(), /deeper than 3 levels \(server\.maxJsonDepth\)/);
        // Brackets and commas inside strings, escaped quotes included, are not structure.
        const text = '{"model":"gpt-test","input":"[[[[,,,,\\"[[[[,,,,"}';
        const s = await postJson(own.url, '/v1/responses', text);
        assert.equal(s.status, 200, s.text());
      } finally {
        await own.close();
      }
    });

    it('a bad maxJsonDepth / maxJsonValues is a config error naming the key and line', () => {
      for (const [yaml, key] of [
        ['server:\n  maxJsonDepth: 0\n', 'maxJsonDepth'],
        ['server:\n  maxJsonDepth: 2.5\n', 'maxJsonDepth'],
        ['server:\n  maxJsonDepth: 10001\n', 'maxJsonDepth'],
        ['server:\n  maxJsonValues: 0\n', 'maxJsonValues'],
      ] as const) {
        assert.throws(
          () => parseConfig(yaml, 'config.yaml', {}),
          (err: unknown) => {
            assert.ok(err instanceof ConfigError, String(err));
            assert.deepEqual(
              err.issues.map((i) => [i.path.join('.'), i.line]),
              [[`server.${key}`, 2]],
              err.message,
            );
            return true;
          },
          yaml,
        );
      }
      const { config } = parseConfig('', 'config.yaml', {});
      assert.equal(config.server.maxJsonDepth, 128);
      assert.equal(config.server.maxJsonValues, 1_000_000);
    });
  });

  describe('item 2: memory follows the bytes, not the chunk count', () => {
    it('9.6 MB in 300k chunks of 32 bytes: held as one buffer while it arrives, then proxied', async () => {
      assert.ok(gc, 'run mocha with --node-option expose-gc (see .mocharc.json)');
      const bytes = 300_000 * 32;
      const body = bodyOf(bytes);
      const frames = chunkFrames(body, 32);
      let server: Socket | undefined;
      g.gw.server.once('connection', (s: Socket) => (server = s));
      gc();
      const base = process.memoryUsage();
      let peakRss = base.rss;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 5);
      let held: NodeJS.MemoryUsage;
      try {
        // Everything but the last chunk: the gateway holds the whole body, still reading.
        const { socket, answer } = await sendChunked([frames]);
        const sent = Buffer.byteLength(head('chunked')) + frames.length;
        await until(
          () => server !== undefined && server.bytesRead >= sent,
          'the gateway read it all',
          10_000,
        );
        // Twice: a freed buffer's memory is only counted as gone after a second pass.
        gc();
        gc();
        held = process.memoryUsage();
        clearInterval(sampler);
        socket.write('0\r\n\r\n');
        const r = parseHttpResponse(await answer);
        assert.equal(r.status, 200, r.body.toString());
        assert.equal(up.requests[0]?.body.toString(), body, 'the body arrives upstream intact');
      } finally {
        clearInterval(sampler);
      }
      const grew = (now: number, then: number) => (now - then) / MB;
      const heap = grew(held.heapUsed, base.heapUsed);
      const buffers = grew(held.arrayBuffers, base.arrayBuffers);
      const peak = grew(peakRss, base.rss);
      // The old reader kept one Buffer per chunk: 56 MB of heap here, and a peak RSS of +112 MB.
      // Now: the body in one buffer (at most twice its size while it grows), nothing per chunk.
      assert.ok(heap < 5, `heap grew ${heap.toFixed(1)} MB while the body arrived`);
      assert.ok(buffers < (2.5 * bytes) / MB, `buffers grew ${buffers.toFixed(1)} MB for ${bytes} bytes`);
      assert.ok(peak < 60, `RSS peaked ${peak.toFixed(0)} MB above the start during the upload`);
      up.requests.length = 0;
      gc();
      const after = (process.memoryUsage().heapUsed - base.heapUsed) / MB;
      assert.ok(after < 5, `heap still ${after.toFixed(1)} MB above the start after the request`);
      await assertServes();
    });

    it('1M one-byte chunks: refused early with 400 "too many small chunks", peak memory bounded', async () => {
      const text = bodyOf(1_000_000);
      const frames = chunkFrames(text, 1);
      gc?.();
      const baseRss = process.memoryUsage().rss;
      let peak = baseRss;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
      try {
        const { out, stallMs } = await maxLoopDelay(async () => {
          const { answer } = await sendChunked([frames, Buffer.from('0\r\n\r\n')]);
          return parseHttpResponse(await answer);
        });
        assertRefused(out.status, out.body.toString(), /^Request body arrives in too many small chunks \(/);
        assert.equal(out.headers.connection, 'close', 'the gateway hangs up rather than read the rest');
        assert.ok(stallMs < 500, `event loop stalled ${stallMs.toFixed(0)} ms`);
      } finally {
        clearInterval(sampler);
      }
      // The old reader kept ~430 bytes per chunk: ~400 MB for this upload.
      const growth = (peak - baseRss) / MB;
      assert.ok(growth < 150, `RSS grew ${growth.toFixed(0)} MB during the upload`);
      await assertServes();
    });

    it('a body in one chunk is used as it arrives; a few chunks are joined exactly', async () => {
      // Content-length, one write: the common case. Then a chunked upload in uneven pieces.
      const body = bodyOf(64 * 1024);
      const r = await postJson(g.url, '/v1/responses', body);
      assert.equal(r.status, 200, r.text());
      assert.equal(up.requests[0]?.body.toString(), body);
      const pieces = [
        body.slice(0, 1),
        body.slice(1, 40_000),
        body.slice(40_000, 40_001),
        body.slice(40_001),
      ];
      const frames = pieces.map((p) => Buffer.from(`${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`));
      const { answer } = await sendChunked([...frames, Buffer.from('0\r\n\r\n')]);
      const chunked = parseHttpResponse(await answer);
      assert.equal(chunked.status, 200, chunked.body.toString());
      assert.equal(up.requests[1]?.body.toString(), body);
    });
  });
});
