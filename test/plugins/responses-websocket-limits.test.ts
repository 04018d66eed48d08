/**
 * Responses over WebSocket, admission and limits (issue 16): the upgrade needs the client key (and,
 * with no keys, no browser Origin); a reload that removes the key refuses the next turn; the per-key
 * socket cap, the idle timeout (never mid-turn), the age cap as Codex expects it, the switch that
 * turns the transport off; frames the front end refuses with a 400 error frame while the socket
 * stays usable; and the per-key limits, which count turns.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import {
  ConfigDir,
  NEW_KEY,
  OLD_KEY,
  openaiUpstream,
  reloadConfig,
  startFileGateway,
  STAY_KEY,
} from '../helpers/reload.js';
import { ResponsesWsClient, type Frame } from '../helpers/responses-ws.js';
import { happyStream, writeSseHead } from '../helpers/upstream.js';
import { accessLines, typesOf, wsConfig, connectTracked } from '../helpers/ws-gateway.js';
import { limitsConfig, startClockedGateway, TestClock } from '../limits/limit-helpers.js';

const MODEL = 'gpt-test';
const TURN = { model: MODEL, input: 'hi' };

interface Refusal {
  status: number;
  body: string;
}

/** The upgrade's refusal: its status and body (fails if the socket opened). */
async function refused(p: Promise<ResponsesWsClient>): Promise<Refusal> {
  try {
    const ws = await p;
    await ws.close();
  } catch (err) {
    return err as Refusal;
  }
  assert.fail('the upgrade was accepted');
}

describe('Responses over WebSocket: admission and limits', function () {
  this.timeout(20_000);
  const h = Harness.perTest();

  async function gateway(o: Parameters<typeof wsConfig>[1] = {}, maxConcurrency?: number) {
    const up = await h.scripted('up1');
    const g = await h.gatewayYaml(wsConfig([{ name: 'up1', url: up.url, maxConcurrency }], o));
    return { g, up };
  }

  const connect = (url: string, opts: Parameters<typeof ResponsesWsClient.connect>[1] = {}) =>
    connectTracked(h, url, opts);

  describe('authentication', () => {
    it('no key or a wrong key: the upgrade gets 401 and no socket', async () => {
      const { g, up } = await gateway();
      const none = await refused(ResponsesWsClient.connect(g.url, { key: null }));
      assert.equal(none.status, 401);
      assert.equal(JSON.parse(none.body).error.code, 'invalid_api_key');
      const wrong = await refused(ResponsesWsClient.connect(g.url, { key: 'sk-client-wrong-000000000' }));
      assert.equal(wrong.status, 401);
      assert.match(JSON.parse(wrong.body).error.message, /^Incorrect API key provided/);
      // The control: with the key, the socket opens and serves.
      const ws = await connect(g.url);
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      assert.equal(up.requests.length, 1);
    });

    it('with no keys configured, an upgrade with an Origin header gets 403; one without opens', async () => {
      const up = await h.scripted('up1');
      const g = await h.gatewayYaml(wsConfig([{ name: 'up1', url: up.url }], { keys: [] }));
      const r = await refused(
        ResponsesWsClient.connect(g.url, { key: null, headers: { origin: 'https://evil.example' } }),
      );
      assert.equal(r.status, 403);
      assert.match(JSON.parse(r.body).error.message, /^Browser requests are refused/);
      const ws = await connect(g.url, { key: null });
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
    });

    it('a reload that removes the key: the open socket’s next turn gets a 401 error frame', async () => {
      const dir = new ConfigDir();
      h.track({ close: () => Promise.resolve(dir.remove()) });
      const up = await h.upstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream().join(''));
      });
      dir.write(reloadConfig({ upstreams: [openaiUpstream('up1', up)] }));
      const g = h.track(await startFileGateway(dir.file));
      const gone = await connect(g.url, { key: OLD_KEY });
      const stays = await connect(g.url, { key: STAY_KEY });
      assert.equal((await gone.turn(TURN)).at(-1)!.type, 'response.completed');
      dir.write(
        reloadConfig({
          keys: [
            { name: 'stay', key: STAY_KEY },
            { name: 'new', key: NEW_KEY },
          ],
          upstreams: [openaiUpstream('up1', up)],
        }),
      );
      const result = await g.gw.reload();
      assert.equal(result.status, 'applied', JSON.stringify(result));
      const frames = await gone.turn(TURN);
      assert.equal(frames.length, 1, JSON.stringify(frames));
      assert.equal(frames[0]!.type, 'error');
      assert.equal(frames[0]!.status, 401);
      assert.equal((frames[0]!.error as { code: string }).code, 'invalid_api_key');
      assert.equal(up.requests.length, 1, 'the refused turn went upstream');
      // The key that stayed still serves on its socket.
      assert.equal((await stays.turn(TURN)).at(-1)!.type, 'response.completed');
      assert.ok(!JSON.stringify(frames).includes(OLD_KEY));
    });
  });

  describe('socket limits', () => {
    it('over maxSocketsPerKey the upgrade gets 426 websocket_limit_reached; a closed socket frees its place', async () => {
      const { g } = await gateway({ websocket: { maxSocketsPerKey: 2 }, log: { level: 'debug' } });
      const a = await connect(g.url);
      await connect(g.url);
      const over = await refused(ResponsesWsClient.connect(g.url));
      assert.equal(over.status, 426);
      const error = JSON.parse(over.body).error;
      assert.equal(error.code, 'websocket_limit_reached');
      assert.match(error.message, /\(2\)/);
      await a.close();
      // The gateway counts the socket out when its side closes, which may come just after ours.
      await until(
        () => g.logs.some((l) => l.msg === 'websocket session closed'),
        'the gateway saw the socket close',
      );
      const again = await connect(g.url);
      assert.equal((await again.turn(TURN)).at(-1)!.type, 'response.completed');
      // The cap still holds.
      assert.equal((await refused(ResponsesWsClient.connect(g.url))).status, 426);
    });

    it('the idle timeout closes an idle socket (1000) but not one mid-turn, which closes once idle after its turn', async () => {
      const { g, up } = await gateway({ websocket: { idleTimeout: '150ms' } });
      const busy = await connect(g.url);
      const held = up.holdNext();
      busy.send({ type: 'response.create', ...TURN });
      const stream = await held;
      // Opened after the turn started: its idle clock runs out after the busy socket's would have.
      const idle = await connect(g.url);
      assert.deepEqual(await idle.closed, { code: 1000, reason: 'idle timeout' });
      assert.equal(busy.ws.readyState, busy.ws.OPEN, 'the socket mid-turn was closed');
      stream.finish();
      const frames = await busy.untilTurnEnds();
      assert.equal(frames.at(-1)!.type, 'response.completed');
      assert.deepEqual(await busy.closed, { code: 1000, reason: 'idle timeout' });
    });

    it('past maxAge the next create gets error websocket_connection_limit_reached and the socket closes', async () => {
      const { g, up } = await gateway({ websocket: { maxAge: '1s' } });
      const opened = performance.now();
      const ws = await connect(g.url);
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      // The age itself is what is tested: its shortest setting is 1 s.
      await until(() => performance.now() - opened > 1050, 'the socket is past its age', 3000);
      const frames = await ws.turn(TURN);
      assert.deepEqual(frames, [
        {
          type: 'error',
          status: 400,
          error: {
            message:
              'Responses websocket connection limit reached (1s). Create a new websocket connection to continue.',
            type: 'invalid_request_error',
            param: null,
            code: 'websocket_connection_limit_reached',
          },
          headers: {},
        },
      ]);
      assert.deepEqual(await ws.closed, { code: 1000, reason: 'connection age limit' });
      assert.equal(up.requests.length, 1);
    });

    it('pings: a client that answers stays open across pings; one that does not answer is dropped', async () => {
      const { g } = await gateway({ websocket: { pingInterval: '100ms', idleTimeout: 0 } });
      const alive = await connect(g.url);
      const silent = await connect(g.url);
      let pings = 0;
      alive.ws.on('ping', () => pings++);
      // Not reading is not answering: the silent client's pings wait unread in its socket.
      (silent.ws as unknown as { _socket: Socket })._socket.pause();
      await until(() => pings >= 4, 'four pings', 5000);
      assert.equal(alive.ws.readyState, alive.ws.OPEN);
      (silent.ws as unknown as { _socket: Socket })._socket.resume();
      // Dropped without a close frame.
      assert.equal((await silent.closed).code, 1006);
      assert.equal(alive.ws.readyState, alive.ws.OPEN);
      assert.equal((await alive.turn(TURN)).at(-1)!.type, 'response.completed');
    });

    it('websocket.enabled false: the upgrade gets 426 websocket_not_supported', async () => {
      const { g } = await gateway({ websocket: { enabled: false } });
      const r = await refused(ResponsesWsClient.connect(g.url));
      assert.equal(r.status, 426);
      assert.equal(JSON.parse(r.body).error.code, 'websocket_not_supported');
    });
  });

  describe('frames the front end refuses', () => {
    it('response.processed is taken silently; binary, malformed JSON, unknown or missing type: a 400 error frame each, and the socket serves after', async () => {
      const { g, up } = await gateway();
      const ws = await connect(g.url);
      ws.send({ type: 'response.processed', response_id: 'resp_earlier' });
      const turn = await ws.turn(TURN);
      assert.equal(turn[0]!.type, 'response.created', 'something answered response.processed');
      assert.equal(turn.at(-1)!.type, 'response.completed');
      const bad: [string, () => void, RegExp, string | null][] = [
        [
          'a binary frame',
          () => ws.ws.send(Buffer.from(JSON.stringify(TURN)), { binary: true }),
          /^Binary frames are not supported/,
          null,
        ],
        ['malformed JSON', () => ws.ws.send('{"type":"response.create",'), /JSON/i, null],
        [
          'an unknown type',
          () => ws.send({ type: 'response.append', input: [] }),
          /^Unsupported frame type "response\.append"/,
          'type',
        ],
        ['no type', () => ws.send({ model: MODEL, input: 'hi' }), /^A frame needs a "type"/, 'type'],
      ];
      for (const [what, send, message, param] of bad) {
        send();
        const f = (await ws.next())!;
        assert.equal(f.type, 'error', what);
        assert.equal(f.status, 400, what);
        const error = f.error as Record<string, unknown>;
        assert.equal(error.type, 'invalid_request_error', what);
        assert.match(String(error.message), message, what);
        if (param !== null) assert.equal(error.param, param, what);
      }
      assert.equal(up.requests.length, 1, 'a refused frame went upstream');
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      assert.equal(ws.binary.length, 0);
    });

    it('a second create while a turn runs gets an error frame; the running turn completes', async () => {
      const { g, up } = await gateway();
      const ws = await connect(g.url);
      const held = up.holdNext();
      ws.send({ type: 'response.create', ...TURN });
      const stream = await held;
      const first = (await ws.next())!;
      ws.send({ type: 'response.create', ...TURN, input: 'too soon' });
      const frames: Frame[] = [first];
      let refusal: Frame | undefined;
      for (;;) {
        const f = (await ws.next())!;
        if (f.type === 'error') {
          refusal = f;
          stream.finish();
          continue;
        }
        frames.push(f);
        if (f.type === 'response.completed') break;
      }
      assert.equal(refusal?.status, 400);
      assert.equal((refusal?.error as { code: string }).code, 'response_in_progress');
      assert.equal(typesOf(frames).at(-1), 'response.completed');
      assert.equal(up.requests.length, 1);
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
    });
  });

  describe('per-key limits', () => {
    it('requestsPerMinute counts turns: the turn over it gets a 429 error frame with retry-after and x-ratelimit headers', async () => {
      const clock = new TestClock();
      const up = await h.scripted('X');
      const g = h.track(
        await startClockedGateway(
          limitsConfig([{ name: 'X', url: up.url }], { requestsPerMinute: 2 }),
          clock,
        ),
      );
      const ws = await connect(g.url);
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      const frames = await ws.turn(TURN);
      assert.deepEqual(frames, [
        {
          type: 'error',
          status: 429,
          error: {
            message:
              'Rate limit reached for requests per minute on key "tester": Limit 2, Used 2. Please try again in 50s.',
            type: 'rate_limit_error',
            param: null,
            code: 'rate_limit_exceeded',
          },
          headers: {
            'retry-after': '50',
            'x-ratelimit-limit-requests': '2',
            'x-ratelimit-remaining-requests': '0',
            'x-ratelimit-reset-requests': '50s',
            'x-request-id': (frames[0]?.headers as Record<string, string> | undefined)?.['x-request-id'],
          },
        },
      ]);
      assert.equal(up.requests.length, 2);
      await until(() => accessLines(g).length === 3, 'three access lines');
      assert.equal((frames[0]!.headers as Record<string, string>)['x-request-id'], accessLines(g)[2]!.reqId);
      // The next minute admits again, on the same socket.
      clock.nextMinute();
      assert.equal((await ws.turn(TURN)).at(-1)!.type, 'response.completed');
      await until(() => accessLines(g).length === 4, 'four access lines');
      assert.deepEqual(
        accessLines(g).map((l) => l.status),
        [200, 200, 429, 200],
      );
    });
  });
});
