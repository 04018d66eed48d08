/**
 * Fault injection on the upstream side. Each case sends one request to an upstream that fails in
 * one chosen way, then checks, for every fault and both `stream` modes:
 *  - the client got a terminal answer: an OpenAI-shaped HTTP error when nothing had gone out yet,
 *    or one final `response.failed` (mapped code, real message) and nothing after it;
 *  - the gateway let go of the upstream request (the upstream saw its side close);
 *  - in-flight requests, upstream leases and the wait queue are back to 0;
 *  - no socket or timer is left open (handle counts back to their baseline);
 *  - the gateway still serves: the same upstream, healthy again, and another one both answer.
 * Each fault runs on both transports (`proxy.transport: undici`, `http-proxy-3`).
 */
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  badEncoding,
  bigDelta,
  bigFrame,
  closeAfterHeaders,
  FRAMES,
  gzipIfAsked,
  html,
  MALFORMED,
  PREFIX,
  renumber,
  resetBeforeHeaders,
  resetMidJson,
  resetMidStream,
  sse,
  stallBeforeHeaders,
  stallMidJson,
  stallMidStream,
  startFaultUpstream,
  type FaultUpstream,
} from '../helpers/fault-upstream.js';
import { expectGatewayIdle, expectNoLeaks, handleBaseline } from '../helpers/handles.js';
import { Harness } from '../helpers/harness.js';
import { poolConfig, SERVED_BY } from '../helpers/pool.js';
import { closedPort, deadline, parseSse, postJson, type RawResponse } from '../helpers/raw.js';
import { happyStream, type UpstreamHandler } from '../helpers/upstream.js';

const TIMEOUTS = { connect: '300ms', firstByte: '300ms', idle: '300ms' };
const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);
/** What the client sees of the happy stream before a fault after PREFIX frames. */
const BEFORE_FAULT = FRAMES.slice(0, PREFIX).map((f) => parseSse(f)[0]!.event);

const h = new Harness();

interface Setup {
  g: TestGateway;
  /** Undefined when the fault upstream is a closed port. */
  faulty: FaultUpstream | undefined;
  healthy: FaultUpstream;
}

/** A gateway with the fault upstream (model gpt-fault, short timeouts) and a healthy one (gpt-test). */
/** The transport the current `describe` runs the faults on. */
let transport = 'undici';

async function setup(refused: boolean, proxy: Record<string, unknown> = {}): Promise<Setup> {
  const faulty = refused ? undefined : h.track(await startFaultUpstream('fault'));
  const healthy = h.track(await startFaultUpstream('healthy'));
  const faultUrl = faulty?.url ?? `http://127.0.0.1:${await closedPort()}`;
  const g = h.track(
    await startGateway(
      poolConfig(
        [
          { name: 'fault', url: faultUrl, models: ['gpt-fault'], timeouts: TIMEOUTS },
          { name: 'healthy', url: healthy.url, models: ['gpt-test'] },
        ],
        { proxy: { transport, ...proxy } },
      ),
    ),
  );
  return { g, faulty, healthy };
}

/** The error of the one "request failed" access line for this request, by its status. */
function loggedError(g: TestGateway, status: number): Record<string, unknown> {
  const lines = g.logs.filter((l) => l.msg === 'request failed' && l.status === status);
  assert.equal(lines.length, 1, `expected one "request failed" line with status ${status}:\n${g.rawLogs()}`);
  return lines[0]!.error as Record<string, unknown>;
}

function expectHttpError(r: RawResponse, status: number, code: string, message: RegExp): void {
  assert.equal(r.status, status, r.text());
  assert.equal(r.complete, true);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const body = r.json();
  const error = body.error as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.match(String(error.message), message);
  assert.equal(typeof error.type, 'string');
  assert.equal(error.code, code);
}

/**
 * One `response.failed` last, after exactly `before` and the `error` event that announces it
 * (responses-routes' errorEvent, on by default), on a cleanly ended stream.
 */
function expectFailedStream(
  r: RawResponse,
  before: (string | undefined)[],
  code: string,
  message: RegExp,
): void {
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/event-stream/);
  assert.equal(r.complete, true, 'the stream must end cleanly after its terminal event, not be cut');
  const events = parseSse(r.text());
  assert.deepEqual(
    events.map((e) => e.event),
    [...before, 'error', 'response.failed'],
  );
  assert.equal(events.filter((e) => TERMINAL.has(String(e.json.type))).length, 1);
  const seqs = events.map((e) => e.json.sequence_number as number);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `sequence ${seqs.join(',')}`);
  const failed = events.at(-1)!.json;
  assert.equal(failed.type, 'response.failed');
  const error = (failed.response as Record<string, unknown>).error as Record<string, unknown>;
  assert.equal(error.code, code);
  assert.match(String(error.message), message);
  const announced = events.at(-2)!.json;
  assert.equal(announced.code, code);
  assert.equal(announced.message, error.message);
}

interface FaultCase {
  fault: UpstreamHandler | 'refused';
  stream: boolean;
  path?: string;
  proxy?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** Checks the client's answer (and what the fault upstream saw). */
  expect(r: RawResponse, faulty: FaultUpstream | undefined): void;
  /** The core error code in the access log (undefined: the request succeeds). */
  logged?: string;
}

/**
 * Runs one fault: the request, its answer, then the invariants every case shares. The handle
 * baseline is taken with the gateway and upstreams up and idle, so it covers what one request left.
 */
async function runFault(c: FaultCase): Promise<void> {
  const { g, faulty, healthy } = await setup(c.fault === 'refused', c.proxy);
  if (faulty !== undefined) faulty.answer(c.fault as UpstreamHandler);
  const base = await handleBaseline();

  const body = { model: 'gpt-fault', stream: c.stream, input: 'hi' };
  const r = await deadline(postJson(g.url, c.path ?? '/v1/responses', body, c.headers), 5000, 'answer');
  c.expect(r, faulty);
  if (c.logged !== undefined) assert.equal(loggedError(g, r.status).code, c.logged);
  else
    assert.deepEqual(
      g.logs.filter((l) => l.msg === 'request failed'),
      [],
    );
  await expectGatewayIdle(g.gw);
  if (faulty !== undefined) {
    assert.equal(faulty.exchanges.length, 1);
    await deadline(faulty.exchanges[0]!.closed, 2000, 'the upstream side of the exchange to close');
    faulty.closeIdle();
  }
  await expectNoLeaks(base, 'after the fault');

  // The gateway survives: the same upstream, healthy again, and another one both serve in full.
  const again = await postJson(g.url, '/v1/responses', { ...body, model: 'gpt-test' });
  assert.equal(again.status, 200);
  assert.equal(again.text(), happyStream('resp_healthy').join(''));
  if (faulty !== undefined) {
    const same = await postJson(g.url, '/v1/responses', body);
    assert.equal(same.status, 200, same.text());
    assert.equal(same.headers[SERVED_BY], 'fault');
    assert.equal(same.text(), happyStream('resp_fault').join(''));
    faulty.closeIdle();
  }
  healthy.closeIdle();
  await expectGatewayIdle(g.gw);
  await expectNoLeaks(base, 'after the healthy requests');
}

describe('fault injection: upstream', function () {
  this.timeout(10_000);
  afterEach(() => h.cleanup());

  it('the leak check sees a timer and a socket left open, and names them', async () => {
    const base = await handleBaseline();
    const timer = setTimeout(() => {}, 60_000);
    const healthy = await startFaultUpstream('leak-probe');
    try {
      await assert.rejects(expectNoLeaks(base, 'probe', 50), (err: Error) => {
        assert.match(err.message, /Timeout: \d+ → \d+/);
        assert.match(err.message, /TCPServerWrap: \d+ → \d+/);
        return true;
      });
    } finally {
      clearTimeout(timer);
      await healthy.close();
    }
    // And once both are gone, the same check passes.
    await expectNoLeaks(base, 'probe');
  });

  // Every fault, on both transports (proxy.transport).
  for (const t of ['undici', 'http-proxy-3'])
    describe(`on ${t}`, () => {
      before(() => (transport = t));
      upstreamFaults();
    });
});

function upstreamFaults(): void {
  describe('refuses connections', () => {
    for (const stream of [true, false])
      it(`stream:${stream} → 503 upstream_error`, () =>
        runFault({
          fault: 'refused',
          stream,
          expect: (r) => expectHttpError(r, 503, 'upstream_error', /refused/),
          logged: 'UPSTREAM_CONNECTION_REFUSED',
        }));
  });

  describe('resets', () => {
    for (const stream of [true, false])
      it(`before the headers, stream:${stream} → 502 upstream_error`, () =>
        runFault({
          fault: resetBeforeHeaders,
          stream,
          expect: (r) => expectHttpError(r, 502, 'upstream_error', /reset/),
          logged: 'UPSTREAM_RESET',
        }));

    it('mid-stream → the events so far, then response.failed "upstream connection lost"', () =>
      runFault({
        fault: resetMidStream(),
        stream: true,
        expect: (r) => expectFailedStream(r, BEFORE_FAULT, 'server_error', /^upstream connection lost$/),
        logged: 'UPSTREAM_CONNECTION_LOST',
      }));

    it('mid-stream on /backend-api/codex/responses → the same response.failed', () =>
      runFault({
        fault: resetMidStream(),
        stream: true,
        path: '/backend-api/codex/responses',
        expect: (r) => expectFailedStream(r, BEFORE_FAULT, 'server_error', /^upstream connection lost$/),
        logged: 'UPSTREAM_CONNECTION_LOST',
      }));

    // A JSON answer is held until complete (issue 11 item 9): none of the cut body reaches the client.
    it('mid-body of a JSON answer (stream:false) → 502 JSON, none of the cut body', () =>
      runFault({
        fault: resetMidJson,
        stream: false,
        expect: (r) => {
          expectHttpError(r, 502, 'server_error', /^upstream connection lost$/);
          assert.ok(!r.text().includes('resp_fault'));
        },
        logged: 'UPSTREAM_CONNECTION_LOST',
      }));
  });

  describe('stalls', () => {
    for (const stream of [true, false])
      it(`before the headers, stream:${stream} → 504 after firstByte`, () =>
        runFault({
          fault: stallBeforeHeaders,
          stream,
          expect: (r) => expectHttpError(r, 504, 'upstream_error', /Timed out waiting/),
          logged: 'UPSTREAM_FIRST_BYTE_TIMEOUT',
        }));

    it('between chunks of a stream → response.failed naming the stall', () =>
      runFault({
        fault: stallMidStream(),
        stream: true,
        expect: (r) => expectFailedStream(r, BEFORE_FAULT, 'upstream_error', /stalled/),
        logged: 'UPSTREAM_IDLE_TIMEOUT',
      }));

    it('between chunks of a JSON answer (stream:false) → 504 JSON naming the stall, none of the body', () =>
      runFault({
        fault: stallMidJson,
        stream: false,
        expect: (r) => {
          expectHttpError(r, 504, 'upstream_error', /stalled/);
          assert.ok(!r.text().includes('resp_fault'));
        },
        logged: 'UPSTREAM_IDLE_TIMEOUT',
      }));
  });

  describe('malformed SSE', () => {
    const after = (bad: string, end = true) => sse([...FRAMES.slice(0, PREFIX), bad], end);

    it('a data line of cut JSON after output → response.failed (malformed), the frame not forwarded', () =>
      runFault({
        fault: after(MALFORMED.brokenJson),
        stream: true,
        expect: (r) => {
          expectFailedStream(r, BEFORE_FAULT, 'upstream_error', /malformed/);
          assert.ok(!r.text().includes('"delta":"x"'));
        },
        logged: 'UPSTREAM_MALFORMED',
      }));

    it('cut JSON as the first event → 502 JSON, never a 200', () =>
      runFault({
        fault: sse([MALFORMED.brokenJson]),
        stream: true,
        expect: (r) => expectHttpError(r, 502, 'upstream_error', /malformed/),
        logged: 'UPSTREAM_MALFORMED',
      }));

    it('garbage bytes and NULs in a data line → response.failed (malformed)', () =>
      runFault({
        fault: after(MALFORMED.garbageData),
        stream: true,
        expect: (r) => {
          expectFailedStream(r, BEFORE_FAULT, 'upstream_error', /malformed/);
          assert.ok(!r.text().includes('\u0000'), 'NUL bytes reached the client');
        },
        logged: 'UPSTREAM_MALFORMED',
      }));

    it('a frame with no data between valid events is dropped; the stream completes', () =>
      runFault({
        fault: sse([...FRAMES.slice(0, PREFIX), MALFORMED.noData, ...FRAMES.slice(PREFIX)]),
        stream: true,
        expect: (r) => {
          assert.equal(r.status, 200);
          assert.equal(r.complete, true);
          assert.equal(r.text(), FRAMES.join(''));
        },
      }));

    it('a bare `event: error` after output → response.failed at once, not after the idle timeout', () =>
      runFault({
        // The upstream then holds the stream open: only the error frame may end it.
        fault: after(MALFORMED.bareError, false),
        stream: true,
        expect: (r) => expectFailedStream(r, BEFORE_FAULT, 'server_error', /upstream reported an error/),
        logged: 'UPSTREAM_STREAM_ERROR',
      }));

    it('a bare `event: error` before any output → 502 JSON with the same message', () =>
      runFault({
        fault: sse([MALFORMED.bareError], false),
        stream: true,
        expect: (r) => expectHttpError(r, 502, 'server_error', /upstream reported an error/),
        logged: 'UPSTREAM_STREAM_ERROR',
      }));
  });

  describe('a 10 MB single SSE frame', () => {
    const TEN_MB = 10 * 1024 * 1024;

    it('over proxy.maxEventBytes (1mb), after output → response.failed (frame too large)', () =>
      runFault({
        fault: bigFrame(TEN_MB, 4),
        stream: true,
        proxy: { maxEventBytes: '1mb' },
        expect: (r) =>
          expectFailedStream(r, BEFORE_FAULT.slice(0, 4), 'upstream_error', /SSE event over \d+/),
        logged: 'UPSTREAM_FRAME_TOO_LARGE',
      }));

    it('over proxy.maxEventBytes, before any output → 502 JSON', () =>
      runFault({
        fault: bigFrame(TEN_MB, 2),
        stream: true,
        proxy: { maxEventBytes: '1mb' },
        expect: (r) => expectHttpError(r, 502, 'upstream_error', /SSE event over \d+/),
        logged: 'UPSTREAM_FRAME_TOO_LARGE',
      }));

    it('within the default limit (16mb) → forwarded byte for byte', () =>
      runFault({
        fault: bigFrame(TEN_MB, 4),
        stream: true,
        expect: (r) => {
          assert.equal(r.status, 200);
          assert.equal(r.complete, true);
          const expected =
            FRAMES.slice(0, 4).join('') + bigDelta(TEN_MB, 4) + renumber(FRAMES.slice(4), 5).join('');
          assert.equal(r.body.length, Buffer.byteLength(expected));
          assert.ok(r.text() === expected, 'the 10 MB stream differs from what the upstream sent');
        },
      }));
  });

  describe('an invalid content-encoding', () => {
    for (const kind of ['json', 'sse'] as const)
      it(`content-encoding: bogus on a 200 ${kind} body → 502 naming it, nothing undecodable forwarded`, () =>
        runFault({
          fault: badEncoding(kind),
          stream: kind === 'sse',
          expect: (r) => {
            expectHttpError(r, 502, 'upstream_error', /content-encoding "bogus"/);
            assert.equal(r.headers['content-encoding'], undefined);
          },
          logged: 'UPSTREAM_MALFORMED',
        }));

    it('a client accepting gzip still gets a stream the gateway could read: the upstream is asked for identity', () =>
      runFault({
        fault: gzipIfAsked,
        stream: true,
        headers: { 'accept-encoding': 'gzip, deflate, br' },
        expect: (r, faulty) => {
          assert.equal(faulty!.requests[0]!.headers['accept-encoding'], 'identity');
          assert.equal(r.status, 200);
          assert.equal(r.headers['content-encoding'], undefined);
          assert.equal(r.text(), FRAMES.join(''));
        },
      }));
  });

  describe('HTML instead of JSON', () => {
    for (const stream of [true, false])
      it(`a 200 text/html answer, stream:${stream} → 502 naming the content type`, () =>
        runFault({
          fault: html(200),
          stream,
          expect: (r) => {
            expectHttpError(r, 502, 'upstream_error', /text\/html/);
            assert.ok(!r.text().includes('<html>'));
          },
          logged: 'UPSTREAM_MALFORMED',
        }));

    it('a 200 text/html answer on /backend-api/codex/responses → the same 502', () =>
      runFault({
        fault: html(200),
        stream: true,
        path: '/backend-api/codex/responses',
        expect: (r) => expectHttpError(r, 502, 'upstream_error', /text\/html/),
        logged: 'UPSTREAM_MALFORMED',
      }));

    for (const stream of [true, false])
      it(`a 502 HTML error page, stream:${stream} → 502 OpenAI-shaped JSON, not the page`, () =>
        runFault({
          fault: html(502),
          stream,
          expect: (r) => {
            expectHttpError(r, 502, 'upstream_error', /Upstream returned HTTP 502 \(text\/html\)/);
            assert.ok(!r.text().includes('<html>'));
          },
          logged: 'UPSTREAM_HTTP_502',
        }));
  });

  describe('closes right after the headers', () => {
    for (const [kind, stream] of [
      ['sse', true],
      ['json', false],
    ] as const)
      it(`a ${kind} head, then the socket ends (stream:${stream}) → 502 JSON, never a 200`, () =>
        runFault({
          fault: closeAfterHeaders(kind),
          stream,
          expect: (r) => expectHttpError(r, 502, 'server_error', /upstream connection lost/),
          logged: 'UPSTREAM_CONNECTION_LOST',
        }));
  });
}
