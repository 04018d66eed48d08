/**
 * Backpressure across the whole chain: a client that stops reading must stop the upstream (through
 * the gateway, not by buffering the stream in it), the idle timer must not count the client's
 * slowness as an upstream stall, and once the client reads again everything arrives intact. On both
 * transports (`proxy.transport`).
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { proxyConfig } from '../helpers/proxy-config.js';
import { connectRaw, parseHttpResponse, parseSse, rawHttpRequest, readToEnd } from '../helpers/raw.js';
import {
  frame,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  type TestUpstream,
} from '../helpers/upstream.js';

const EVENTS = 2000;
const DELTA = 'x'.repeat(16 * 1024);
/** The upstream must be stuck on 'drain' for longer than the gateway's idle timeout (500ms). */
const STUCK_MS = 800;

/** An upstream that streams a large SSE body, writing only while `res.write` returns true. */
class BigStream {
  readonly frames: string[] = [];
  readonly total: number;
  written = 0;
  /** Times `res.write` returned false. */
  blocks = 0;
  finished = false;
  closedEarly = false;
  private onStuck!: (bytes: number) => void;
  private onGone!: (err: Error) => void;
  /**
   * Resolves with the bytes written so far once the upstream has waited STUCK_MS for 'drain'; rejects
   * if its connection closes first or it writes the whole body without getting stuck.
   */
  readonly stuck: Promise<number>;
  private stuckTimer: NodeJS.Timeout | undefined;
  private resolved = false;

  constructor() {
    this.frames.push(frame('response.created', 0, { response: responseObject('resp_big', 'in_progress') }));
    for (let i = 1; i <= EVENTS; i++) {
      this.frames.push(
        frame('response.output_text.delta', i, {
          item_id: 'msg_1',
          output_index: 0,
          content_index: 0,
          delta: `${i}:${DELTA}`,
        }),
      );
    }
    this.frames.push(
      frame('response.completed', EVENTS + 1, {
        response: responseObject('resp_big', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
      }),
    );
    this.total = this.frames.reduce((n, f) => n + Buffer.byteLength(f), 0);
    this.stuck = new Promise((resolve, reject) => {
      this.onStuck = resolve;
      this.onGone = reject;
    });
  }

  readonly handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.once('close', () => {
      if (!this.finished) {
        this.closedEarly = true;
        clearTimeout(this.stuckTimer);
        this.onGone(new Error(`the upstream connection closed after ${this.written} of ${this.total} bytes`));
      }
    });
    writeSseHead(res);
    let i = 0;
    const pump = (): void => {
      clearTimeout(this.stuckTimer);
      while (i < this.frames.length) {
        const f = this.frames[i++]!;
        this.written += Buffer.byteLength(f);
        if (!res.write(f)) {
          this.blocks++;
          // Stuck if 'drain' does not come within STUCK_MS (the only wait here is on that condition).
          if (!this.resolved) {
            this.stuckTimer = setTimeout(() => {
              this.resolved = true;
              this.onStuck(this.written);
            }, STUCK_MS);
          }
          res.once('drain', pump);
          return;
        }
      }
      this.finished = true;
      res.end();
      if (!this.resolved)
        this.onGone(new Error(`the upstream wrote all ${this.total} bytes without ever being held back`));
    };
    pump();
  };
}

for (const transport of ['undici', 'http-proxy-3'])
  describe(`backpressure (${transport})`, () => {
    let up: TestUpstream | undefined;
    let g: TestGateway | undefined;
    afterEach(async () => {
      await g?.close();
      await up?.close();
      g = up = undefined;
    });

    it('a client that stops reading stalls the upstream (bounded memory), without tripping the idle timer', async function () {
      this.timeout(20_000);
      const stream = new BigStream();
      up = await startUpstream(stream.handler);
      g = await startGateway(
        proxyConfig([up.url], {
          proxy: { transport, timeouts: { connect: '1s', firstByte: '2s', idle: '500ms' } },
        }),
      );
      // The gateway's side of the client connection, to see what the gateway itself holds.
      let clientSide: Socket | undefined;
      g.gw.server.once('connection', (s: Socket) => (clientSide = s));

      const socket = await connectRaw(g.url);
      socket.pause(); // read nothing until told
      const body = JSON.stringify({ model: 'gpt-test', stream: true, input: 'big' });
      socket.write(
        rawHttpRequest(
          'POST',
          '/v1/responses',
          new URL(g.url).host,
          { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', connection: 'close' },
          body,
        ),
      );

      // The upstream gets blocked: its writes stop succeeding and no 'drain' comes for longer than idle.
      const writtenWhilePaused = await stream.stuck;
      assert.equal(stream.closedEarly, false, 'the gateway dropped the upstream while the client was slow');
      assert.ok(
        writtenWhilePaused < stream.total / 2,
        `the upstream wrote ${writtenWhilePaused} of ${stream.total} bytes while the client read nothing`,
      );
      // Most of that sits in kernel socket buffers (up to tcp_wmem max per sender); what the gateway
      // process holds is what it read from the upstream minus what it handed to the client's socket.
      const upstreamSide = [...g.gw.pool.upstreams[0]!.connections.sockets][0];
      assert.ok(clientSide !== undefined && upstreamSide !== undefined);
      const handedToClient = clientSide.bytesWritten - clientSide.writableLength;
      const held = upstreamSide.bytesRead - handedToClient;
      assert.ok(held < 1024 * 1024, `the gateway holds ${held} bytes of the stream in memory`);
      assert.ok(
        clientSide.writableLength < 1024 * 1024,
        `${clientSide.writableLength} bytes queued for the client`,
      );
      assert.equal(g.gw.inflight, 1);
      assert.equal(
        g.logs.some((l) => l.msg === 'request failed'),
        false,
      );

      // Read again: everything arrives, intact and in order, and the stream ends normally.
      const res = parseHttpResponse(await readToEnd(socket));
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'text/event-stream');
      assert.equal(res.complete, true);
      assert.equal(stream.finished, true);
      assert.equal(res.body.length, stream.total);
      assert.equal(
        res.body.equals(Buffer.from(stream.frames.join(''))),
        true,
        'the body differs from what the upstream wrote',
      );
      const events = parseSse(res.body.toString());
      assert.equal(events.length, EVENTS + 2);
      assert.deepEqual(
        events.map((e) => e.json.sequence_number),
        events.map((_e, i) => i),
      );
      assert.equal(events.at(-1)!.event, 'response.completed');
      const line = g.logs.find((l) => l.msg === 'request');
      assert.equal(line?.outcome, 'ok');
    });
  });
