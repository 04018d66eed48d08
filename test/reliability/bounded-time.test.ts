/**
 * Issue 11, items 6 and 18: no request holds an upstream slot (or a connection) without a bound in time.
 * - Item 6, `server.sendTimeout`: a client that stops reading is cut once it has left written output
 *   undrained that long, its slot and upstream freed; a slow reader that keeps draining is not; a
 *   response that ends into a buffer the client never drains is closed after the same bound.
 * - Item 18, `proxy.timeouts.total`: comment pings cannot keep a request alive past its total limit,
 *   streamed (one response.failed) or not (504), in the queue too; never retried, no cooldown; 0 is off.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type net from 'node:net';
import YAML from 'yaml';
import { parseConfig } from '../../core/config/config.js';
import { classify } from '../../core/defaults/classify.js';
import { ClientStalledError, requestTotalTimeout } from '../../core/kernel/errors.js';
import { formatDuration } from '../../core/config/units.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { expectGatewayIdle, expectNoLeaks, handleBaseline } from '../helpers/handles.js';
import { Harness } from '../helpers/harness.js';
import { poolConfig, until, type PoolConfigOptions, type PoolUpstreamSpec } from '../helpers/pool.js';
import {
  connectRaw,
  deadline,
  parseHttpResponse,
  parseSse,
  postJson,
  rawHttpRequest,
  readToEnd,
  type RawResponse,
} from '../helpers/raw.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const MODEL = 'gpt-test';
const DELTA = 'x'.repeat(16 * 1024);
/** response.created … content_part.added: a delta may follow. */
const OPENING = happyStream('resp_big').slice(0, 4);

const h = new Harness();

async function gateway(
  upstreams: PoolUpstreamSpec[],
  opts: PoolConfigOptions & { server?: Record<string, unknown> } = {},
): Promise<TestGateway> {
  const config = YAML.parse(poolConfig(upstreams, opts)) as { server: Record<string, unknown> };
  Object.assign(config.server, opts.server);
  return h.track(await startGateway(YAML.stringify(config)));
}

/** One upstream exchange of a big stream. */
interface Streamed {
  /** Times the upstream's write was refused: the gateway had stopped reading it. */
  blocks: number;
  finished: boolean;
  /** Resolves when the upstream side of the exchange closes, for any reason. */
  closed: Promise<void>;
}

/**
 * A Responses stream of `events` 16 KB deltas (endless with Infinity), then response.completed,
 * written only while the socket takes it, as a real upstream behind backpressure would.
 */
function bigStream(events: number, log: Streamed[]): UpstreamHandler {
  return (_req, res) => {
    const s: Streamed = {
      blocks: 0,
      finished: false,
      closed: new Promise((r) => res.once('close', () => r())),
    };
    log.push(s);
    res.on('error', () => {});
    writeSseHead(res);
    res.write(OPENING.join(''));
    let i = 0;
    const pump = (): void => {
      while (!res.destroyed) {
        const seq = OPENING.length + i;
        if (i++ >= events) {
          res.end(
            frame('response.completed', seq, {
              response: responseObject('resp_big', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
            }),
          );
          s.finished = true;
          return;
        }
        const delta = { item_id: 'msg_1', output_index: 0, content_index: 0, delta: DELTA };
        if (!res.write(frame('response.output_text.delta', seq, delta))) {
          s.blocks++;
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  };
}

/** The opening frames and one delta (so the client has output), then `: ping` every 100 ms until closed. */
function pingForever(afterMs = Infinity): UpstreamHandler {
  return (_req, res) => {
    res.on('error', () => {});
    writeSseHead(res);
    const frames = happyStream('resp_ping');
    res.write(frames.slice(0, 5).join(''));
    const t0 = performance.now();
    const timer = setInterval(() => {
      if (performance.now() - t0 < afterMs) res.write(': ping\n\n');
      else {
        clearInterval(timer);
        res.end(frames.slice(5).join(''));
      }
    }, 100);
    res.once('close', () => clearInterval(timer));
  };
}

/** A raw client that sends a streamed request and then reads nothing. */
async function stalledClient(g: TestGateway, input: string): Promise<net.Socket> {
  const socket = await connectRaw(g.url);
  socket.pause();
  socket.on('error', () => {});
  const body = JSON.stringify({ model: MODEL, stream: true, input });
  const headers = {
    authorization: `Bearer ${CLIENT_KEY}`,
    'content-type': 'application/json',
    connection: 'close',
  };
  socket.write(rawHttpRequest('POST', '/v1/responses', new URL(g.url).host, headers, body));
  return socket;
}

/**
 * The gateway's side of each client connection, with when it closed. A client that reads nothing
 * never sees the close (the FIN waits behind the data it does not read), so the test watches here.
 */
function serverSides(g: TestGateway): { socket: net.Socket; closed: Promise<number> }[] {
  const sides: { socket: net.Socket; closed: Promise<number> }[] = [];
  g.gw.server.on('connection', (socket: net.Socket) => {
    sides.push({ socket, closed: new Promise((r) => socket.once('close', () => r(performance.now()))) });
  });
  return sides;
}

function post(g: TestGateway, body: Record<string, unknown>): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', body), 8000, 'the response never ended');
}

/** The access lines of failed requests, by internal error code. */
function failedLines(g: TestGateway, code: string): Record<string, unknown>[] {
  return g.logs.filter(
    (l) => l.msg === 'request failed' && (l.error as { code?: string } | undefined)?.code === code,
  );
}

function errorOf(r: RawResponse): { message: string; type: string; code: string | null } {
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return r.json().error as { message: string; type: string; code: string | null };
}

describe('bounded time (issue 11: server.sendTimeout, proxy.timeouts.total)', function () {
  this.timeout(20_000);
  afterEach(() => h.cleanup());

  describe('server.sendTimeout', () => {
    it('two clients that stop reading lose their slots after sendTimeout; the next request is served', async () => {
      const streams: Streamed[] = [];
      const up = await h.upstream((req, res, rec) =>
        rec.json?.input === 'endless'
          ? bigStream(Infinity, streams)(req, res, rec)
          : bigStream(2, [])(req, res, rec),
      );
      const g = await gateway([{ name: 'up1', url: up.url, maxConcurrency: 2 }], {
        server: { sendTimeout: '1s' },
        // No queue: a request finding both slots taken gets 429 at once.
        pool: { queue: { maxQueue: 0 } },
      });
      const sides = serverSides(g);
      const base = await handleBaseline();
      const t0 = performance.now();
      const clients = [await stalledClient(g, 'endless'), await stalledClient(g, 'endless')];
      await until(() => streams.length === 2, 'both streams to reach the upstream');
      assert.equal(g.gw.pool.state.inFlight('up1'), 2);
      // While they are stalled, the slots are theirs.
      const refused = await post(g, { model: MODEL, stream: true, input: 'hi' });
      assert.equal(refused.status, 429, refused.text());

      const closedAt = await deadline(
        Promise.all(sides.slice(0, 2).map((s) => s.closed)),
        10_000,
        'the gateway to close both stalled connections',
      );
      for (const at of closedAt) {
        const ms = at - t0;
        // Cut no earlier than the bound; the upper bound leaves room for a loaded machine.
        assert.ok(
          ms >= 950 && ms < 8000,
          `a stalled client was cut after ${Math.round(ms)}ms (sendTimeout 1s)`,
        );
      }
      await deadline(Promise.all(streams.map((s) => s.closed)), 3000, 'both upstream streams to be dropped');
      assert.equal(
        streams.every((s) => s.blocks > 0),
        true,
        'the stalled clients must have pushed back on the upstream',
      );
      await expectGatewayIdle(g.gw);

      const served = await post(g, { model: MODEL, stream: true, input: 'hi' });
      assert.equal(served.status, 200, served.text());
      assert.equal(parseSse(served.text()).at(-1)?.event, 'response.completed');

      const lines = failedLines(g, 'CLIENT_STALLED');
      assert.equal(lines.length, 2, g.rawLogs());
      for (const line of lines) {
        assert.equal(line.outcome, 'error');
        assert.match(
          String((line.error as { message: string }).message),
          /^Client did not read the response for 1s \(server\.sendTimeout\)$/,
        );
      }
      assert.equal(
        g.logs.some((l) => l.outcome === 'client_abort'),
        false,
      );

      // What the stalled clients finally read: a 200 stream cut short, with no terminal event.
      for (const socket of clients) {
        const res = parseHttpResponse(await deadline(readToEnd(socket), 5000, 'the stalled client to read'));
        assert.equal(res.status, 200);
        assert.equal(res.complete, false);
        assert.doesNotMatch(res.body.toString(), /response\.(failed|completed)/);
      }
      up.server.closeIdleConnections();
      await expectNoLeaks(base, 'after the stalled clients');
    });

    it('a slow but steady reader is not cut while it drains within sendTimeout', async () => {
      const streams: Streamed[] = [];
      // 8 MB: more than the socket buffers hold, so the gateway must wait on the client many times.
      const up = await h.upstream(bigStream(512, streams));
      const g = await gateway([{ name: 'up1', url: up.url, maxConcurrency: 1 }], {
        server: { sendTimeout: '1s' },
      });
      const base = await handleBaseline();
      const socket = await stalledClient(g, 'slow');
      const chunks: Buffer[] = [];
      let burst = 0;
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        burst += c.length;
        // 512 KB every 200 ms: slower than the stream, never idle for anything near sendTimeout.
        if (burst >= 512 * 1024) socket.pause();
      });
      const reader = setInterval(() => {
        burst = 0;
        socket.resume();
      }, 200);
      const t0 = performance.now();
      const ended = new Promise<void>((r) => socket.once('close', () => r()));
      try {
        await deadline(ended, 15_000, 'the slow reader to get the whole stream');
      } finally {
        clearInterval(reader);
      }
      const ms = performance.now() - t0;

      const res = parseHttpResponse(Buffer.concat(chunks));
      assert.equal(res.status, 200);
      assert.equal(res.complete, true, 'the slow reader was cut');
      assert.equal(parseSse(res.body.toString()).at(-1)?.event, 'response.completed');
      assert.equal(streams[0]!.finished, true);
      // It really was held back, for far longer in all than one sendTimeout.
      assert.ok(streams[0]!.blocks > 0, 'the gateway never waited on the client');
      assert.ok(ms > 3000, `the stream took only ${Math.round(ms)}ms: not slow enough to show anything`);
      assert.equal(failedLines(g, 'CLIENT_STALLED').length, 0, g.rawLogs());
      assert.equal(g.logs.find((l) => l.msg === 'request')?.outcome, 'ok');
      await expectGatewayIdle(g.gw);
      // Nothing outlives the response: no send clock left armed after the stream ended.
      up.server.closeIdleConnections();
      await expectNoLeaks(base, 'after the slow reader');
    });

    it('a response that ends into output the client never drains is closed after sendTimeout, its slot freed at once', async () => {
      const streams: Streamed[] = [];
      const up = await h.upstream(bigStream(Infinity, streams));
      const g = await gateway([{ name: 'up1', url: up.url, maxConcurrency: 1 }], {
        server: { sendTimeout: '2s' },
        proxy: { timeouts: { total: '1s' } },
      });
      const sides = serverSides(g);
      const t0 = performance.now();
      const client = await stalledClient(g, 'endless');

      // The total limit ends the request while the client is stalled: the terminal event goes into
      // its full buffer, and the slot is free right away.
      await until(() => failedLines(g, 'REQUEST_TOTAL_TIMEOUT').length === 1, 'the total limit', 5000);
      await expectGatewayIdle(g.gw);
      assert.equal(sides[0]!.socket.destroyed, false, 'the connection was closed before sendTimeout');
      await deadline(streams[0]!.closed, 3000, 'the upstream stream to be dropped');

      // Nothing drains it, so the connection itself goes after sendTimeout (not never).
      const ms = (await deadline(sides[0]!.closed, 10_000, 'the undrained connection to be closed')) - t0;
      assert.ok(ms >= 1950 && ms < 9000, `closed after ${Math.round(ms)}ms (sendTimeout 2s)`);
      assert.equal(failedLines(g, 'CLIENT_STALLED').length, 0, 'the request had already ended');
      client.destroy();
    });

    it('a stream that ends into a full buffer and is then read in full leaves no send clock behind', async () => {
      // One 4 MB event (in place of the usual delta) and the terminal event in one write: the gateway's last write is refused, then
      // the stream ends, while the client (reading normally) still has most of it to take.
      const frames = happyStream('resp_one');
      const big = frame('response.output_text.delta', 4, {
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: 'y'.repeat(4 * 1024 * 1024),
      });
      const up = await h.upstream((_req, res) => {
        writeSseHead(res);
        res.end(frames.slice(0, 4).join('') + big + frames.slice(5).join(''));
      });
      const g = await gateway([{ name: 'up1', url: up.url }]);
      const base = await handleBaseline();
      const r = await post(g, { model: MODEL, stream: true, input: 'hi' });
      assert.equal(r.status, 200);
      assert.equal(r.complete, true);
      assert.equal(parseSse(r.text()).at(-1)?.event, 'response.completed');
      await expectGatewayIdle(g.gw);
      up.server.closeIdleConnections();
      // With the default sendTimeout (60s), a clock left armed would show as an open Timeout.
      await expectNoLeaks(base, 'after the stream');
    });

    it('classify() never retries or cools an upstream for a stalled client or the total limit', () => {
      assert.deepEqual(classify(new ClientStalledError(), 30_000), { retry: 'none' });
      assert.deepEqual(classify(requestTotalTimeout(1000, 'headers'), 30_000), { retry: 'none' });
    });
  });

  describe('proxy.timeouts.total', () => {
    const TIMEOUTS = { connect: '1s', firstByte: '5s', idle: '500ms', total: '1s' };

    it('a stream kept alive by comment pings ends with one response.failed at the total limit', async () => {
      const closed: Promise<void>[] = [];
      const up = await h.upstream((req, res, rec) => {
        closed.push(new Promise((r) => res.once('close', () => r())));
        return pingForever()(req, res, rec);
      });
      const g = await gateway([{ name: 'up1', url: up.url, maxConcurrency: 1 }], {
        proxy: { timeouts: TIMEOUTS },
      });
      const t0 = performance.now();
      const r = await post(g, { model: MODEL, stream: true, input: 'hi' });
      const ms = performance.now() - t0;

      assert.equal(r.status, 200);
      assert.ok(ms >= 950 && ms < 5000, `ended after ${Math.round(ms)}ms (total 1s)`);
      const text = r.text();
      // The pings went through, and kept the 500ms idle timer from firing.
      assert.ok((text.match(/^: ping$/gm) ?? []).length >= 4, text);
      const events = parseSse(text);
      assert.equal(events.filter((e) => e.event === 'response.failed').length, 1);
      const last = events.at(-1)!;
      assert.equal(last.event, 'response.failed');
      assert.deepEqual((last.json.response as { error: unknown }).error, {
        code: 'request_timeout',
        message: 'Request exceeded the total time limit of 1s (proxy.timeouts.total)',
      });
      await deadline(closed[0]!, 3000, 'the upstream stream to be dropped');
      await expectGatewayIdle(g.gw);
      const lines = failedLines(g, 'REQUEST_TOTAL_TIMEOUT');
      assert.equal(lines.length, 1, g.rawLogs());
      assert.equal(lines[0]!.outcome, 'error');
    });

    it('an upstream that stalls before its headers gets a 504 at the total limit: not retried, not cooled', async () => {
      const silent: UpstreamHandler = () => {};
      const a = await h.upstream(silent);
      const b = await h.upstream(silent);
      const g = await gateway(
        [
          { name: 'a', url: a.url, priority: 1 },
          { name: 'b', url: b.url },
        ],
        { proxy: { timeouts: TIMEOUTS, maxAttempts: 3 } },
      );
      const t0 = performance.now();
      const r = await post(g, { model: MODEL, input: 'hi' });
      const ms = performance.now() - t0;

      assert.equal(r.status, 504);
      assert.deepEqual(errorOf(r), {
        message: 'Request exceeded the total time limit of 1s (proxy.timeouts.total)',
        type: 'server_error',
        param: null,
        code: 'request_timeout',
      });
      assert.ok(ms >= 950 && ms < 4000, `answered after ${Math.round(ms)}ms (total 1s, firstByte 5s)`);
      assert.equal(a.requests.length + b.requests.length, 1, 'the request was retried');
      const now = Date.now();
      for (const name of ['a', 'b']) assert.equal(g.gw.pool.state.cooldown(name, MODEL, now), undefined);
      assert.equal(failedLines(g, 'REQUEST_TOTAL_TIMEOUT').length, 1, g.rawLogs());
      await expectGatewayIdle(g.gw);
    });

    for (const mode of ['hold', 'keepalive'] as const) {
      it(`a request queued for a slot gets its answer at the total limit (${mode} mode)`, async () => {
        const held: http.ServerResponse[] = [];
        const up = await h.upstream((_req, res) => {
          held.push(res);
          res.on('error', () => {});
          writeSseHead(res);
          res.write(happyStream('resp_held').slice(0, 5).join(''));
        });
        // The queued request is under the gateway-wide 1s; the one holding the slot, under its upstream's 30s.
        const g = await gateway(
          [
            {
              name: 'up1',
              url: up.url,
              maxConcurrency: 1,
              timeouts: { total: '30s', idle: '30s' },
            },
          ],
          {
            proxy: { timeouts: TIMEOUTS },
            pool: { queue: { waitTimeout: '10s', mode, keepaliveInterval: '200ms' } },
          },
        );
        const first = await stalledClient(g, 'first');
        first.resume();
        await until(() => held.length === 1, 'the first request to hold the slot');

        const t0 = performance.now();
        const queued = post(g, { model: MODEL, stream: true, input: 'queued' });
        await until(() => g.gw.pool.queue.length === 1, 'the second request to be queued');
        const r = await queued;
        const ms = performance.now() - t0;
        assert.ok(ms >= 900 && ms < 5000, `answered after ${Math.round(ms)}ms (total 1s, waitTimeout 10s)`);
        const message = 'Request exceeded the total time limit of 1s (proxy.timeouts.total)';
        if (mode === 'hold') {
          assert.equal(r.status, 504);
          assert.equal(errorOf(r).message, message);
          assert.equal(errorOf(r).code, 'request_timeout');
        } else {
          assert.equal(r.status, 200);
          const events = parseSse(r.text());
          assert.equal(events[0]!.event, 'response.created');
          assert.equal(events.at(-1)!.event, 'response.failed');
          assert.deepEqual((events.at(-1)!.json.response as { error: unknown }).error, {
            code: 'request_timeout',
            message,
          });
        }
        assert.equal(up.requests.length, 1, 'the queued request reached the upstream');
        assert.equal(g.gw.pool.queue.length, 0);
        // The first request is untouched: its upstream's own total is 30s.
        assert.equal(held[0]!.destroyed, false);
        assert.equal(g.gw.pool.state.inFlight('up1'), 1);
        first.destroy();
        await expectGatewayIdle(g.gw);
      });
    }

    it("0 turns it off (an upstream's own value overrides proxy.timeouts.total)", async () => {
      const up = await h.upstream(pingForever(1500));
      const g = await gateway([{ name: 'up1', url: up.url, timeouts: { total: '0' } }], {
        proxy: { timeouts: TIMEOUTS },
      });
      const r = await post(g, { model: MODEL, stream: true, input: 'hi' });
      assert.equal(r.status, 200);
      assert.equal(parseSse(r.text()).at(-1)?.event, 'response.completed');
      assert.equal(g.gw.pool.get('up1')!.timeouts.total, 0);
    });

    it('config: defaults, 0 and per-upstream values', () => {
      const defaults = parseConfig('', 'config.yaml', {}).config;
      assert.equal(defaults.server.sendTimeout, 60_000);
      assert.equal(defaults.proxy.timeouts.total, 3_600_000);
      const off = parseConfig(
        'server:\n  sendTimeout: 0\nproxy:\n  timeouts:\n    total: 0\n',
        'config.yaml',
        {},
      ).config;
      assert.equal(off.server.sendTimeout, 0);
      assert.equal(off.proxy.timeouts.total, 0);
      const set = parseConfig(
        'server:\n  sendTimeout: 90s\nproxy:\n  timeouts:\n    total: 2h\n',
        'c.yaml',
        {},
      );
      assert.equal(set.config.server.sendTimeout, 90_000);
      assert.equal(set.config.proxy.timeouts.total, 7_200_000);
      // How the messages name the bounds.
      assert.deepEqual([3_600_000, 60_000, 90_000, 1000, 1500, 0].map(formatDuration), [
        '1h',
        '1m',
        '90s',
        '1s',
        '1500ms',
        '0ms',
      ]);
    });
  });
});
