/**
 * The three upstream timers (connect, first byte, idle), each on a real loopback upstream that
 * misbehaves in exactly one way. Every one must end in its own typed error, both in what the
 * client receives and in the gateway's log line.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import type { UpstreamSpec } from '../helpers/proxy-config.js';
import { parseSse, postJson, type RawResponse } from '../helpers/raw.js';
import { startBlackhole } from '../helpers/stall.js';
import {
  frame,
  happyStream,
  responseObject,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const TIMEOUTS = { connect: '300ms', firstByte: '300ms', idle: '300ms' };
const STREAM_BODY = { model: 'gpt-test', stream: true, input: 'hi' };

const h = new Harness();
const upstream = (handler: UpstreamHandler) => h.upstream(handler);
const gateway = (upstreams: (string | UpstreamSpec)[], timeouts: Record<string, string> = TIMEOUTS) =>
  h.gateway(upstreams, { proxy: { timeouts } });

/** Resolves when the upstream side of this exchange is closed (the gateway gave up on it). */
function closed(res: http.ServerResponse): Promise<void> {
  return new Promise((r) => res.once('close', () => r()));
}

function errorOf(r: RawResponse): Record<string, unknown> {
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return r.json().error as Record<string, unknown>;
}

/** The `error` field of the gateway's one "request failed" log line. */
function loggedError(g: TestGateway): Record<string, unknown> {
  const lines = g.logs.filter((l) => l.msg === 'request failed');
  assert.equal(lines.length, 1, `expected one "request failed" line:\n${g.rawLogs()}`);
  return lines[0]!.error as Record<string, unknown>;
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

describe('timeouts', () => {
  afterEach(() => h.cleanup());

  describe('first byte', () => {
    it('an upstream that accepts the request but never answers → 504 UPSTREAM_FIRST_BYTE_TIMEOUT', async () => {
      let upstreamGone: Promise<void> | undefined;
      const up = await upstream((_req, res) => {
        upstreamGone = closed(res); // never answers
      });
      const g = await gateway([up.url]);

      const [r, ms] = await timed(postJson(g.url, '/v1/responses', STREAM_BODY));
      assert.equal(r.status, 504);
      const err = errorOf(r);
      assert.equal(err.message, 'Timed out waiting for the upstream to respond');
      assert.equal(err.type, 'upstream_error');
      assert.equal(err.code, 'upstream_error');
      assert.equal(loggedError(g).code, 'UPSTREAM_FIRST_BYTE_TIMEOUT');
      assert.ok(ms >= 280, `gave up after ${ms}ms, before the 300ms timeout`);
      assert.equal(up.requests.length, 1);
      // The gateway dropped the upstream request rather than leaving it open.
      await upstreamGone;
    });

    it("an upstream's own timeouts override proxy.timeouts", async () => {
      const up = await upstream(() => {});
      const g = await gateway([{ url: up.url, timeouts: { firstByte: '200ms' } }], {
        connect: '300ms',
        firstByte: '60s',
        idle: '60s',
      });
      const [r, ms] = await timed(postJson(g.url, '/v1/responses', STREAM_BODY));
      assert.equal(r.status, 504);
      assert.equal(loggedError(g).code, 'UPSTREAM_FIRST_BYTE_TIMEOUT');
      assert.ok(ms >= 180 && ms < 5000, `took ${ms}ms`);
    });

    it('fails over to another upstream after a first-byte timeout', async () => {
      const stalled = await upstream(() => {});
      const good = await upstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream().join(''));
      });
      const g = await gateway([
        { url: stalled.url, priority: 0 },
        { url: good.url, priority: 1 },
      ]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 200);
      assert.equal(r.text(), happyStream().join(''));
      assert.equal(stalled.requests.length, 1);
      assert.equal(good.requests.length, 1);
    });
  });

  describe('idle', () => {
    it('a Responses stream that stalls after one event → response.failed naming the stall, then the socket ends', async () => {
      let upstreamGone: Promise<void> | undefined;
      const up = await upstream((_req, res) => {
        upstreamGone = closed(res);
        writeSseHead(res);
        res.write(frame('response.created', 0, { response: responseObject('resp_idle', 'in_progress') }));
        // One content event (so the pre-output hold has released), and nothing more.
        res.write(
          frame('response.output_text.delta', 1, {
            item_id: 'msg_1',
            output_index: 0,
            content_index: 0,
            delta: 'Hel',
          }),
        );
      });
      const g = await gateway([up.url]);

      const [r, ms] = await timed(postJson(g.url, '/v1/responses', STREAM_BODY));
      assert.equal(r.status, 200);
      assert.equal(r.complete, true, 'the stream should end with its terminal event, not be cut');
      const events = parseSse(r.text());
      assert.deepEqual(
        events.map((e) => e.event),
        // The default errorEvent announces it.
        ['response.created', 'response.output_text.delta', 'error', 'response.failed'],
      );
      const failed = events[3]!.json;
      assert.equal(failed.type, 'response.failed');
      assert.equal(failed.sequence_number, 3);
      const error = (failed.response as Record<string, unknown>).error as Record<string, unknown>;
      assert.match(String(error.message), /stall/i);
      assert.equal(error.code, 'upstream_error');
      assert.equal(loggedError(g).code, 'UPSTREAM_IDLE_TIMEOUT');
      assert.ok(ms >= 280, `gave up after ${ms}ms, before the 300ms idle timeout`);
      await upstreamGone;
    });

    it('an SSE upstream that sends its head and then nothing → 504 JSON, not a 200 opening with response.failed', async () => {
      const up = await upstream((_req, res) => {
        writeSseHead(res);
        res.flushHeaders();
      });
      const g = await gateway([up.url]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 504);
      const err = errorOf(r);
      assert.match(String(err.message), /stall/i);
      assert.equal(err.code, 'upstream_error');
      assert.equal(loggedError(g).code, 'UPSTREAM_IDLE_TIMEOUT');
    });

    // A JSON answer is held until complete (issue 11 item 9): a stalled one is a 504 before any output.
    it('a JSON body that stalls mid-way → 504 naming the stall, none of the body, not left hanging', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"id":"resp_idle","object":"response",');
      });
      const g = await gateway([up.url]);
      const r = await postJson(g.url, '/v1/responses', { model: 'm', input: 'x' });
      assert.equal(r.status, 504, r.text());
      assert.equal(r.complete, true);
      assert.match(String((r.json().error as Record<string, unknown>).message), /stalled/);
      assert.ok(!r.text().includes('resp_idle'));
      assert.equal(loggedError(g).code, 'UPSTREAM_IDLE_TIMEOUT');
    });

    it('measures idle between chunks, not the whole response: a slow but steady stream completes', async () => {
      // Events every 120ms for ~720ms in total, with idle at 300ms: the timer must restart on each chunk.
      const events = happyStream();
      const up = await upstream(async (_req, res) => {
        writeSseHead(res);
        for (const [i, e] of events.entries()) {
          if (i > 0 && i % 2 === 0) await new Promise((r) => setTimeout(r, 120));
          res.write(e);
        }
        res.end();
      });
      const g = await gateway([up.url]);
      const [r, ms] = await timed(postJson(g.url, '/v1/responses', STREAM_BODY));
      assert.equal(r.status, 200);
      assert.equal(r.text(), events.join(''));
      assert.ok(ms > 300, `the stream took only ${ms}ms, so it proves nothing about the idle timer`);
      assert.equal(
        g.logs.some((l) => l.msg === 'request failed'),
        false,
      );
    });
  });

  describe('connect', () => {
    it('an upstream that never completes the TCP handshake → 504 UPSTREAM_CONNECT_TIMEOUT', async () => {
      const hole = await startBlackhole();
      h.track(hole);
      const g = await gateway([hole.url]);

      const [r, ms] = await timed(postJson(g.url, '/v1/responses', STREAM_BODY));
      assert.equal(r.status, 504);
      const err = errorOf(r);
      assert.equal(err.message, 'Timed out connecting to the upstream');
      assert.equal(err.type, 'upstream_error');
      assert.equal(err.code, 'upstream_error');
      assert.equal(loggedError(g).code, 'UPSTREAM_CONNECT_TIMEOUT');
      assert.ok(ms >= 280 && ms < 2000, `gave up after ${ms}ms`);
    });

    it('fails over to another upstream after a connect timeout', async () => {
      const hole = await startBlackhole();
      h.track(hole);
      const good = await upstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream().join(''));
      });
      const g = await gateway([
        { url: hole.url, priority: 0 },
        { url: good.url, priority: 1 },
      ]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 200);
      assert.equal(r.text(), happyStream().join(''));
      assert.equal(good.requests.length, 1);
      const line = g.logs.find((l) => l.msg === 'request');
      assert.equal(line?.attempts, 2);
    });
  });
});
