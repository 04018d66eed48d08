/**
 * Responses over WebSocket, the flow of bytes and sockets (issue 16): a slow reader holds the
 * upstream back instead of the gateway buffering the turn, and gets every frame once it reads; a
 * client that never reads is dropped at server.sendTimeout; a client that leaves mid-turn cancels
 * the upstream request and frees its slot; fifty sessions at once each get exactly their own
 * frames; and a shutdown closes idle sockets at once and busy ones after their turn (or after
 * the drain time, with response.failed).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { Harness } from '../helpers/harness.js';
import { until, writeEach, type ScriptedUpstream } from '../helpers/pool.js';
import { deadline } from '../helpers/raw.js';
import type { ResponsesWsClient } from '../helpers/responses-ws.js';
import { type Frame } from '../helpers/responses-ws.js';
import { frame, responseObject, writeSseHead } from '../helpers/upstream.js';
import {
  accessLines,
  responseOf,
  textStream,
  typesOf,
  wsConfig,
  connectTracked,
} from '../helpers/ws-gateway.js';

const MODEL = 'gpt-test';
const TURN = { model: MODEL, input: 'hi' };

/** The client's TCP socket (ws keeps it private): pausing it is a client that stops reading. */
const tcpOf = (ws: ResponsesWsClient): Socket => (ws.ws as unknown as { _socket: Socket })._socket;

describe('Responses over WebSocket: flow, sessions and shutdown', function () {
  this.timeout(30_000);
  const h = Harness.perTest();

  const connect = (url: string, opts: Parameters<typeof ResponsesWsClient.connect>[1] = {}) =>
    connectTracked(h, url, opts);

  describe('a slow reader', () => {
    /** Deltas of 64 KiB: 1000 of them, far more than the kernel's socket buffers on the way hold. */
    const COUNT = 1000;

    /** An upstream that writes a big stream, waiting for drain whenever a write says it is full. */
    async function bigUpstream(deltas: string[]) {
      const state = { written: 0, total: 0, blockedAt: undefined as number | undefined, done: false };
      const up = await h.upstream(async (_req, res) => {
        writeSseHead(res);
        const out = [
          frame('response.created', 0, { response: responseObject('resp_big', 'in_progress') }),
          ...deltas.map((delta, i) =>
            frame('response.output_text.delta', i + 1, {
              item_id: 'msg_big',
              output_index: 0,
              content_index: 0,
              delta,
            }),
          ),
          frame('response.completed', deltas.length + 1, {
            response: responseObject('resp_big', 'completed'),
          }),
        ];
        state.total = out.reduce((n, f) => n + f.length, 0);
        for (const f of out) {
          state.written += f.length;
          if (!res.write(f)) {
            state.blockedAt = performance.now();
            await new Promise((r) => res.once('drain', r));
            state.blockedAt = undefined;
          }
        }
        res.end();
        state.done = true;
      });
      return { up, state };
    }

    for (const deflate of [false, true]) {
      it(`${deflate ? 'with' : 'without'} permessage-deflate: the upstream is held back while the client does not read, and every frame arrives intact after`, async () => {
        // Incompressible text, so compression cannot make the stream small enough to fit the buffers.
        const deltas = Array.from({ length: COUNT }, (_, i) =>
          deflate ? randomBytes(48 * 1024).toString('base64') : String(i % 10).repeat(64 * 1024),
        );
        const { up, state } = await bigUpstream(deltas);
        const g = await h.gatewayYaml(
          wsConfig([{ name: 'up1', url: up.url }], { websocket: { maxBufferedBytes: '64kb' } }),
        );
        const ws = await connect(g.url, { deflate });
        tcpOf(ws).pause();
        ws.send({ type: 'response.create', ...TURN });
        // Backpressure is an absence of progress: the upstream stays blocked in a write for a while
        // (a gateway that buffered the turn would read all of it at loopback speed).
        await until(
          () => state.blockedAt !== undefined && performance.now() - state.blockedAt > 300,
          'the upstream blocked in a write for 300 ms',
          10_000,
        );
        assert.equal(state.done, false);
        assert.ok(
          state.written < state.total / 2,
          `the upstream wrote ${state.written} of ${state.total} bytes to a client that reads nothing`,
        );
        tcpOf(ws).resume();
        const frames = await deadline(
          ws.untilTurnEnds(),
          15_000,
          'the turn did not go on once the client read again',
        );
        assert.equal(state.done, true);
        assert.equal(frames.length, COUNT + 2);
        assert.equal(frames.at(-1)!.type, 'response.completed');
        frames.forEach((f, i) => assert.equal(f.sequence_number, i, `frame ${i}`));
        for (let i = 0; i < COUNT; i++) assert.equal(frames[i + 1]!.delta, deltas[i], `delta ${i}`);
        // The socket serves on.
        assert.equal(ws.ws.readyState, ws.ws.OPEN);
      });
    }

    it('a client that never reads is dropped at server.sendTimeout: the upstream is cancelled and the slot freed', async () => {
      const deltas = Array.from({ length: COUNT }, () => 'z'.repeat(64 * 1024));
      const { up, state } = await bigUpstream(deltas);
      const upstreamClosed = new Promise<void>((resolve) =>
        up.server.once('request', (_req, res: http.ServerResponse) => res.once('close', () => resolve())),
      );
      const g = await h.gatewayYaml(
        wsConfig([{ name: 'up1', url: up.url, maxConcurrency: 1 }], {
          server: { sendTimeout: '300ms' },
          websocket: { maxBufferedBytes: '64kb' },
        }),
      );
      const ws = await connect(g.url, { deflate: false });
      tcpOf(ws).pause();
      ws.send({ type: 'response.create', ...TURN });
      await upstreamClosed;
      assert.equal(state.done, false, 'the upstream finished its stream');
      await until(() => g.gw.pool.state.inFlight('up1') === 0, 'the slot is freed');
      await until(() => accessLines(g).length === 1, 'the access line');
      const line = accessLines(g)[0]!;
      assert.equal(line.transport, 'websocket');
      assert.equal((line.error as { code: string }).code, 'CLIENT_STALLED', JSON.stringify(line));
      // The client's socket was dropped, with no close frame.
      tcpOf(ws).resume();
      assert.equal((await ws.closed).code, 1006);
      // With maxConcurrency 1, the next turn gets the slot.
      const next = await connect(g.url);
      assert.equal((await next.turn(TURN)).at(-1)!.type, 'response.completed');
    });
  });

  describe('a client that closes mid-turn', () => {
    for (const how of ['close', 'terminate'] as const) {
      it(`(${how}): the upstream request is cancelled, the access line says client_abort 499, and the slot serves the next turn`, async () => {
        const up = await h.scripted('up1');
        const g = await h.gatewayYaml(wsConfig([{ name: 'up1', url: up.url, maxConcurrency: 1 }]));
        const ws = await connect(g.url);
        const held = up.holdNext();
        ws.send({ type: 'response.create', ...TURN });
        const stream = await held;
        // Output reached the client: the turn is well under way.
        assert.equal((await ws.next())?.type, 'response.created');
        if (how === 'close') await ws.close();
        else ws.ws.terminate();
        await stream.closed;
        await until(() => accessLines(g).length === 1, 'the access line');
        const line = accessLines(g)[0]!;
        assert.equal(line.transport, 'websocket');
        assert.equal(line.outcome, 'client_abort');
        assert.equal(line.status, 499);
        assert.equal(line.upstream, 'up1');
        assert.equal(g.gw.pool.state.inFlight('up1'), 0);
        const next = await connect(g.url);
        const frames = await next.turn(TURN);
        assert.equal(frames.at(-1)!.type, 'response.completed');
        assert.equal(up.requests.length, 2);
      });
    }
  });

  describe('many sessions', () => {
    it('50 sessions at once: each socket gets all of its own frames, in order, and none of another’s', async () => {
      const SESSIONS = 50;
      const PIECES = 8;
      const up: ScriptedUpstream = await h.scripted('up1');
      // Echoes the marker (the input) in every delta, written piece by piece so the streams interleave.
      up.fallback = async (_req, res, recorded) => {
        const marker = String(recorded.json?.input);
        writeSseHead(res);
        const deltas = Array.from({ length: PIECES }, (_, i) => `<${marker}:${i}>`);
        await writeEach(res, textStream(`resp_${marker}`, deltas));
        res.end();
      };
      const g = await h.gatewayYaml(
        wsConfig([{ name: 'up1', url: up.url }], { websocket: { maxSocketsPerKey: SESSIONS } }),
      );
      const sockets = await Promise.all(Array.from({ length: SESSIONS }, () => connect(g.url)));
      const results = await Promise.all(sockets.map((ws, i) => ws.turn({ model: MODEL, input: `m${i}` })));
      assert.equal(up.requests.length, SESSIONS);
      results.forEach((frames: Frame[], i) => {
        const marker = `m${i}`;
        const expected = textStream(`resp_${marker}`, [])
          .map((f) => /^event: (\S+)/.exec(f)![1])
          .flatMap((t) =>
            t === 'response.content_part.added'
              ? [t, ...Array<string>(PIECES).fill('response.output_text.delta')]
              : [t],
          );
        assert.deepEqual(typesOf(frames), expected, `session ${i}`);
        frames.forEach((f, n) => assert.equal(f.sequence_number, n, `session ${i} frame ${n}`));
        const deltas = frames.filter((f) => f.type === 'response.output_text.delta').map((f) => f.delta);
        assert.deepEqual(
          deltas,
          Array.from({ length: PIECES }, (_, n) => `<${marker}:${n}>`),
          `session ${i}`,
        );
        for (const f of frames)
          if (typeof f.response === 'object') assert.equal(responseOf(f).id, `resp_${marker}`);
        // Nothing else arrived on the socket.
        assert.equal(sockets[i]!.frames.length, frames.length);
      });
    });
  });

  describe('shutdown', () => {
    // Codex offers permessage-deflate, whose frames are compressed asynchronously: the last frames
    // and the close frame may still be queued when the turn's request has finished.
    for (const deflate of [false, true]) {
      const how = deflate ? 'with permessage-deflate' : 'without permessage-deflate';

      it(`${how}: gw.close(drain): an idle socket closes 1001 at once; a busy one finishes its turn, then closes 1001`, async () => {
        const up = await h.scripted('up1');
        const g = await h.gatewayYaml(wsConfig([{ name: 'up1', url: up.url }]));
        const busy = await connect(g.url, { deflate });
        const idle = await connect(g.url, { deflate });
        const held = up.holdNext();
        busy.send({ type: 'response.create', ...TURN });
        const stream = await held;
        const closing = g.close(10_000);
        assert.deepEqual(await idle.closed, { code: 1001, reason: 'server shutting down' });
        assert.equal(busy.ws.readyState, busy.ws.OPEN, 'the busy socket was closed mid-turn');
        stream.finish();
        const frames = await busy.untilTurnEnds();
        assert.equal(frames.at(-1)?.type, 'response.completed', JSON.stringify(typesOf(frames)));
        assert.deepEqual(await busy.closed, { code: 1001, reason: 'server shutting down' });
        await closing;
      });

      it(`${how}: a turn still running at the drain timeout ends with response.failed, then the socket closes 1001`, async () => {
        const up = await h.scripted('up1');
        const g = await h.gatewayYaml(wsConfig([{ name: 'up1', url: up.url }]));
        const busy = await connect(g.url, { deflate });
        const held = up.holdNext();
        busy.send({ type: 'response.create', ...TURN });
        const stream = await held;
        const closing = g.close(200);
        const frames = await busy.untilTurnEnds();
        const types = typesOf(frames);
        assert.equal(types.at(-1), 'response.failed', JSON.stringify(types));
        assert.ok(!types.includes('error'));
        const failed = frames.at(-1)!;
        assert.equal(failed.sequence_number, (frames.at(-2)!.sequence_number as number) + 1);
        const error = responseOf(failed).error as { code: string; message: string };
        assert.equal(error.message, 'Gateway shut down before the response finished');
        assert.deepEqual(await busy.closed, { code: 1001, reason: 'server shutting down' });
        await stream.closed;
        await closing;
      });
    }
  });
});
