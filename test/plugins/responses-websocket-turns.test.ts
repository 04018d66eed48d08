/**
 * Responses over WebSocket, turn by turn (issue 16): a prewarm answered by the gateway, turns chained
 * with previous_response_id sent upstream as full input, failover before output and the session's
 * affinity to one upstream, failures after output ending in exactly one response.failed, errors
 * before output as one `error` frame with status and headers, and the headers each turn carries.
 * Real upstreams and gateways; the client speaks the protocol as Codex does (responses-ws.ts).
 */
import assert from 'node:assert/strict';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { jsonError, until, type ScriptedUpstream } from '../helpers/pool.js';
import { upstreamKey } from '../helpers/proxy-config.js';
import type { ResponsesWsClient } from '../helpers/responses-ws.js';
import { WS_BETA, type Frame } from '../helpers/responses-ws.js';
import { PREFIX, resetMidStream, sse, FRAMES } from '../helpers/fault-upstream.js';
import { frame, happyStream, responseObject } from '../helpers/upstream.js';
import {
  accessLines,
  messageItem,
  responseOf,
  textAnswer,
  typesOf,
  userItem,
  wsConfig,
  type WsUpstreamSpec,
  connectTracked,
} from '../helpers/ws-gateway.js';

const MODEL = 'gpt-test';
/** The events of the helpers' happy stream, in order. */
const HAPPY_TYPES = happyStream().map((f) => /^event: (\S+)/.exec(f)![1]);

describe('Responses over WebSocket: turns', function () {
  this.timeout(20_000);
  const h = Harness.perTest();

  async function setup(
    names: string[],
    o: Parameters<typeof wsConfig>[1] = {},
    spec: Partial<WsUpstreamSpec> = {},
  ) {
    const ups: ScriptedUpstream[] = [];
    for (const n of names) ups.push(await h.scripted(n));
    const g = await h.gatewayYaml(
      wsConfig(
        ups.map((u) => ({ name: u.name, url: u.url, ...spec })),
        o,
      ),
    );
    return { g, ups };
  }

  const connect = (url: string, opts: Parameters<typeof ResponsesWsClient.connect>[1] = {}) =>
    connectTracked(h, url, opts);

  describe('prewarm and continuation', () => {
    it('a generate:false create is answered locally; two turns chain from it and reach the upstream as full input', async () => {
      const { g, ups } = await setup(['up1']);
      const [up] = ups as [ScriptedUpstream];
      const ws = await connect(g.url);
      const a = userItem('first question');
      const warm = await ws.turn({
        model: MODEL,
        input: [a],
        store: false,
        generate: false,
        instructions: 'be brief',
      });
      assert.deepEqual(typesOf(warm), ['response.created', 'response.completed']);
      const warmId = responseOf(warm[0]).id;
      assert.match(String(warmId), /^resp_[0-9a-f]{32}$/);
      assert.equal(responseOf(warm[1]).id, warmId);
      assert.equal(responseOf(warm[1]).status, 'completed');
      assert.deepEqual([warm[0]!.sequence_number, warm[1]!.sequence_number], [0, 1]);
      assert.equal(up.requests.length, 0, 'the prewarm went upstream');

      // Turn 1 continues the prewarm with one new item: the upstream gets prewarm input + it.
      const b = userItem('second');
      up.answer(textAnswer('up1', 'resp_t1', ['one ', 'answer']));
      const t1 = await ws.turn({
        model: MODEL,
        input: [b],
        store: false,
        previous_response_id: warmId,
        instructions: 'be brief',
      });
      assert.equal(t1.at(-1)!.type, 'response.completed', JSON.stringify(t1.at(-1)));
      assert.equal(responseOf(t1.at(-1)).id, 'resp_t1');
      const body1 = up.requests[0]!.json!;
      assert.deepEqual(body1.input, [a, b]);
      assert.equal(body1.stream, true);
      assert.equal(body1.instructions, 'be brief');
      for (const k of ['type', 'generate', 'previous_response_id'])
        assert.ok(!(k in body1), `the upstream body has "${k}": ${JSON.stringify(body1)}`);

      // Turn 2 continues turn 1: its input, its output item, then the new item.
      const c = userItem('third');
      up.answer(textAnswer('up1', 'resp_t2', ['two']));
      // stream:false means nothing on a socket: the upstream is still asked for a stream.
      const t2 = await ws.turn({
        model: MODEL,
        input: [c],
        store: false,
        stream: false,
        previous_response_id: 'resp_t1',
      });
      assert.equal(responseOf(t2.at(-1)).id, 'resp_t2');
      const body2 = up.requests[1]!.json!;
      assert.deepEqual(body2.input, [a, b, messageItem('msg_resp_t1', 'one answer'), c]);
      assert.equal(body2.stream, true);
      for (const k of ['type', 'generate', 'previous_response_id'])
        assert.ok(!(k in body2), `the upstream body has "${k}": ${JSON.stringify(body2)}`);

      // Each turn is a request of its own on the access log, marked as a WebSocket turn.
      await until(() => accessLines(g).length === 2, 'two access lines');
      for (const line of accessLines(g)) {
        assert.equal(line.transport, 'websocket');
        assert.equal(line.status, 200);
        assert.equal(line.outcome, 'ok');
        assert.equal(line.upstream, 'up1');
        assert.equal(line.client, 'tester');
      }
      assert.notEqual(accessLines(g)[0]!.reqId, accessLines(g)[1]!.reqId);
    });

    it('store:false with an unknown previous_response_id: one 400 previous_response_not_found frame, nothing upstream, the socket still serves', async () => {
      const { g, ups } = await setup(['up1']);
      const [up] = ups as [ScriptedUpstream];
      const ws = await connect(g.url);
      const refused = await ws.turn({
        model: MODEL,
        input: [userItem('x')],
        store: false,
        previous_response_id: 'resp_nowhere',
      });
      assert.equal(refused.length, 1);
      assert.deepEqual(refused[0], {
        type: 'error',
        status: 400,
        error: {
          message: "Previous response with id 'resp_nowhere' not found.",
          type: 'invalid_request_error',
          param: 'previous_response_id',
          code: 'previous_response_not_found',
        },
        headers: {},
      });
      assert.equal(up.requests.length, 0);
      const ok = await ws.turn({ model: MODEL, input: 'hi' });
      assert.equal(ok.at(-1)!.type, 'response.completed');
      assert.equal(up.requests.length, 1);
    });
  });

  describe('failover and affinity', () => {
    for (const [status, what] of [
      [500, 'a 500'],
      [429, 'a 429'],
    ] as const) {
      it(`${what} before output fails over: the client sees only the second upstream's events, the first cools down`, async () => {
        // up1 is preferred (priority 0), so it takes the first attempt.
        const up1 = await h.scripted('up1');
        const up2 = await h.scripted('up2');
        const g = await h.gatewayYaml(
          wsConfig([
            { name: 'up1', url: up1.url, priority: 0 },
            { name: 'up2', url: up2.url, priority: 1 },
          ]),
        );
        up1.answer(
          jsonError(
            status,
            { error: { message: `up1 says ${status}`, type: 'server_error', code: null } },
            status === 429 ? { 'retry-after': '30' } : {},
          ),
        );
        const ws = await connect(g.url);
        const frames = await ws.turn({ model: MODEL, input: 'hi' });
        assert.equal(up1.requests.length, 1);
        assert.equal(up2.requests.length, 1);
        assert.equal(frames.at(-1)!.type, 'response.completed', JSON.stringify(frames.at(-1)));
        assert.deepEqual(typesOf(frames), HAPPY_TYPES);
        for (const f of frames)
          if (typeof f.response === 'object') assert.equal(responseOf(f).id, 'resp_up2');
        const cooled = g.gw.pool.state.cooldown('up1', MODEL, Date.now());
        assert.ok(cooled !== undefined, 'up1 is not cooling');
        assert.equal(cooled.kind, status === 429 ? 'rate_limit' : 'transient');
        await until(() => accessLines(g).length === 1, 'the access line');
        assert.equal(accessLines(g)[0]!.attempts, 2);
        assert.equal(accessLines(g)[0]!.upstream, 'up2');
        assert.equal(accessLines(g)[0]!.status, 200);
      });
    }

    it("a socket's turns stay on one upstream while it is healthy, and round-robin put two sockets on different ones", async () => {
      const { g, ups } = await setup(['up1', 'up2'], { pool: { strategy: 'round-robin' } });
      const [up1, up2] = ups as [ScriptedUpstream, ScriptedUpstream];
      const a = await connect(g.url);
      const b = await connect(g.url);
      const servedA = new Set<unknown>();
      const servedB = new Set<unknown>();
      for (let i = 0; i < 4; i++) {
        servedA.add(responseOf((await a.turn({ model: MODEL, input: `a${i}` })).at(-1)).id);
        servedB.add(responseOf((await b.turn({ model: MODEL, input: `b${i}` })).at(-1)).id);
      }
      assert.equal(servedA.size, 1, `socket a moved: ${[...servedA].join(', ')}`);
      assert.equal(servedB.size, 1, `socket b moved: ${[...servedB].join(', ')}`);
      // Round-robin over the two: the sockets' first turns went to different upstreams.
      assert.notDeepEqual([...servedA], [...servedB]);
      assert.equal(up1.requests.length, 4);
      assert.equal(up2.requests.length, 4);
    });

    it('a session moves when its upstream cools down, and stays on the new one', async () => {
      const { g, ups } = await setup(['up1', 'up2']);
      const [up1, up2] = ups as [ScriptedUpstream, ScriptedUpstream];
      const ws = await connect(g.url);
      const first = responseOf((await ws.turn({ model: MODEL, input: 'x' })).at(-1)).id;
      const [bound, other] = first === 'resp_up1' ? [up1, up2] : [up2, up1];
      bound.answer(jsonError(503, { error: { message: 'down', type: 'server_error', code: null } }));
      const moved = await ws.turn({ model: MODEL, input: 'y' });
      assert.equal(responseOf(moved.at(-1)).id, `resp_${other.name}`);
      g.gw.pool.state.clearTransient(bound.name, MODEL);
      for (let i = 0; i < 3; i++)
        assert.equal(
          responseOf((await ws.turn({ model: MODEL, input: `z${i}` })).at(-1)).id,
          `resp_${other.name}`,
        );
    });
  });

  describe('a failure after output', () => {
    /** The stream's last sequence_number before the terminal frame. */
    const lastSeq = (frames: Frame[]) => frames.slice(0, -1).at(-1)!.sequence_number as number;

    const cases: [string, () => Parameters<ScriptedUpstream['answer']>[0], string, RegExp][] = [
      [
        'the upstream drops the connection mid-stream',
        () => resetMidStream(),
        'server_error',
        /^upstream connection lost$/,
      ],
      [
        'the upstream ends without a terminal event',
        () => sse(FRAMES.slice(0, PREFIX)),
        'server_error',
        /^upstream closed the stream without a terminal event$/,
      ],
      [
        'the upstream sends response.failed',
        () =>
          sse([
            ...FRAMES.slice(0, PREFIX),
            frame('response.failed', PREFIX, {
              response: responseObject('resp_fault', 'failed', {
                error: { code: 'server_error', message: 'The model melted down' },
              }),
            }),
          ]),
        'server_error',
        /^The model melted down$/,
      ],
    ];
    for (const [what, answer, code, message] of cases) {
      it(`${what}: exactly one response.failed with the next sequence_number, no error frame, and the socket serves the next turn`, async () => {
        const { g, ups } = await setup(['up1']);
        const [up] = ups as [ScriptedUpstream];
        up.answer(answer());
        const ws = await connect(g.url);
        const frames = await ws.turn({ model: MODEL, input: 'hi' });
        const types = typesOf(frames);
        assert.equal(types.at(-1), 'response.failed', JSON.stringify(frames));
        assert.equal(types.filter((t) => t === 'response.failed').length, 1);
        assert.ok(!types.includes('error'), `an error frame: ${types.join(', ')}`);
        assert.ok(types.includes('response.output_text.delta'), 'output reached the client first');
        const failed = frames.at(-1)!;
        assert.equal(failed.sequence_number, lastSeq(frames) + 1);
        const response = responseOf(failed);
        assert.equal(response.id, 'resp_fault');
        assert.equal(response.status, 'failed');
        const error = response.error as { code: string; message: string };
        assert.equal(error.code, code, JSON.stringify(error));
        assert.match(error.message, message);
        // The socket stays open and serves the next turn.
        const next = await ws.turn({ model: MODEL, input: 'again' });
        assert.equal(next.at(-1)!.type, 'response.completed', JSON.stringify(next.at(-1)));
        assert.equal(ws.ws.readyState, ws.ws.OPEN);
        await until(() => accessLines(g).length === 2, 'two access lines');
        assert.equal(accessLines(g)[0]!.outcome, 'error');
      });
    }
  });

  describe('an error before output', () => {
    it('a 429 with retry-after: one error frame with status 429, retry-after and x-request-id; the socket still serves', async () => {
      const { g, ups } = await setup(['up1']);
      const [up] = ups as [ScriptedUpstream];
      up.answer(
        jsonError(
          429,
          {
            error: {
              message: 'Rate limit reached for gpt-test',
              type: 'rate_limit_error',
              code: 'rate_limit_exceeded',
            },
          },
          { 'retry-after': '7' },
        ),
      );
      const ws = await connect(g.url);
      const frames = await ws.turn({ model: MODEL, input: 'hi' });
      assert.equal(frames.length, 1, JSON.stringify(frames));
      const f = frames[0]!;
      assert.equal(f.type, 'error');
      assert.equal(f.status, 429);
      const error = f.error as Record<string, unknown>;
      assert.equal(error.type, 'rate_limit_error');
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.match(String(error.message), /Rate limit reached/);
      const headers = f.headers as Record<string, string>;
      assert.equal(headers['retry-after'], '7');
      await until(() => accessLines(g).length === 1, 'the access line');
      assert.equal(headers['x-request-id'], accessLines(g)[0]!.reqId);
      assert.equal(accessLines(g)[0]!.status, 429);
      for (const name of Object.keys(headers)) assert.ok(!['content-type', 'content-length'].includes(name));
      // The cooldown ends early here so the next turn is served at once.
      g.gw.pool.state.clearCooldowns!('up1');
      const next = await ws.turn({ model: MODEL, input: 'again' });
      assert.equal(next.at(-1)!.type, 'response.completed', JSON.stringify(next));
    });

    it('every upstream fails before output: one error frame with the last status; then all cooling: the gateway’s own 429 frame', async () => {
      const { g, ups } = await setup(['up1', 'up2']);
      const [up1, up2] = ups as [ScriptedUpstream, ScriptedUpstream];
      for (const up of [up1, up2])
        up.answer(
          jsonError(
            429,
            {
              error: { message: `${up.name} is slow`, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
            },
            { 'retry-after': '20' },
          ),
        );
      const ws = await connect(g.url);
      const [last] = await ws.turn({ model: MODEL, input: 'hi' });
      assert.equal(up1.requests.length + up2.requests.length, 2);
      assert.equal(last!.type, 'error');
      assert.equal(last!.status, 429);
      assert.match(String((last!.error as { message: string }).message), /^up[12] is slow$/);
      assert.equal((last!.headers as Record<string, string>)['retry-after'], '20');
      // Both cool now: the next turn is refused by the gateway, with nothing sent upstream.
      const frames = await ws.turn({ model: MODEL, input: 'again' });
      assert.equal(frames.length, 1);
      assert.equal(frames[0]!.type, 'error');
      assert.equal(frames[0]!.status, 429);
      const error = frames[0]!.error as { code: string; message: string };
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.match(
        error.message,
        /^Every upstream for gpt-test is rate limited or cooling down; retry in 20s/,
      );
      assert.equal((frames[0]!.headers as Record<string, string>)['retry-after'], '20');
      assert.equal(up1.requests.length + up2.requests.length, 2);
      assert.equal(ws.ws.readyState, ws.ws.OPEN);
      await until(() => accessLines(g).length === 2, 'two access lines');
      assert.deepEqual(
        accessLines(g).map((l) => [l.transport, l.status]),
        [
          ['websocket', 429],
          ['websocket', 429],
        ],
      );
    });

    it('a 400 from the upstream: one error frame with the upstream error object', async () => {
      const { g, ups } = await setup(['up1']);
      const [up] = ups as [ScriptedUpstream];
      const upstreamError = {
        message: "Unsupported parameter: 'access_programs'.",
        type: 'invalid_request_error',
        param: 'access_programs',
        code: 'unsupported_parameter',
      };
      up.answer(jsonError(400, { error: upstreamError }));
      const ws = await connect(g.url);
      const frames = await ws.turn({ model: MODEL, input: 'hi' });
      assert.equal(frames.length, 1, JSON.stringify(frames));
      assert.equal(frames[0]!.type, 'error');
      assert.equal(frames[0]!.status, 400);
      assert.deepEqual(frames[0]!.error, upstreamError);
      assert.equal(typeof (frames[0]!.headers as Record<string, string>)['x-request-id'], 'string');
      const next = await ws.turn({ model: MODEL, input: 'again' });
      assert.equal(next.at(-1)!.type, 'response.completed');
    });
  });

  describe('the headers of a turn', () => {
    it("x-codex-turn-metadata from each create's client_metadata goes upstream; the WebSocket beta and the client key do not", async () => {
      const { g, ups } = await setup(['up1']);
      const [up] = ups as [ScriptedUpstream];
      const ws = await connect(g.url, {
        headers: {
          'openai-beta': `${WS_BETA}, assistants=v2`,
          'x-codex-turn-metadata': '{"turn":"handshake"}',
          session_id: 'thread-1',
        },
      });
      await ws.turn({ model: MODEL, input: 'a', client_metadata: { 'x-codex-turn-metadata': '{"turn":1}' } });
      await ws.turn({ model: MODEL, input: 'b', client_metadata: { 'x-codex-turn-metadata': '{"turn":2}' } });
      await ws.turn({ model: MODEL, input: 'c' });
      assert.deepEqual(
        up.requests.map((r) => r.headers['x-codex-turn-metadata']),
        ['{"turn":1}', '{"turn":2}', '{"turn":"handshake"}'],
      );
      for (const r of up.requests) {
        assert.equal(r.headers['openai-beta'], 'assistants=v2');
        assert.equal(r.headers.authorization, `Bearer ${upstreamKey('up1')}`);
        assert.equal(r.headers.session_id, 'thread-1');
        assert.equal(r.headers['sec-websocket-key'], undefined);
        assert.equal(r.headers.upgrade, undefined);
        for (const [name, value] of Object.entries(r.headers))
          assert.ok(!String(value).includes(CLIENT_KEY), `the client key went upstream in ${name}`);
        assert.ok(!r.body.toString().includes(CLIENT_KEY));
      }
      // Each turn has its own request id, sent upstream.
      const ids = up.requests.map((r) => r.headers['x-request-id']);
      assert.equal(new Set(ids).size, 3);
    });
  });
});
