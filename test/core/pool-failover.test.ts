/**
 * Failover across upstreams, on real loopback servers: which failures move a request to the next
 * upstream (429, 5xx, refused connections, in-200 overload and EOF before any output), which never do
 * (request faults, anything after the first byte), the per-(upstream, model) cooldown a 429 leaves,
 * and the proxy.maxAttempts bound. In these tests A has priority 0 and B priority 1, so A is always
 * tried first while it is eligible.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { TestGateway } from '../helpers/gateway.js';
import {
  jsonError,
  poolHarness,
  servedBy,
  until,
  writeEach,
  type ScriptedUpstream,
} from '../helpers/pool.js';
import { closedPort, deadline, parseSse, postJson, type RawResponse } from '../helpers/raw.js';
import {
  frame,
  happyStream,
  responseObject,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const MODEL = 'gpt-test';
const OTHER_MODEL = 'gpt-other';
const BODY = { model: MODEL, stream: true, input: 'hi' };

const h = poolHarness();

function post(g: TestGateway, body: Record<string, unknown> = BODY): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', body), 5000, 'the client response never ended');
}

/** A (priority 0) and B (priority 1), scripted; the gateway has the given proxy settings. */
async function pair(
  proxy?: Record<string, unknown>,
): Promise<{ A: ScriptedUpstream; B: ScriptedUpstream; g: TestGateway }> {
  const A = await h.upstream('A');
  const B = await h.upstream('B');
  const g = await h.gateway(
    [
      { name: 'A', url: A.url, priority: 0 },
      { name: 'B', url: B.url, priority: 1 },
    ],
    proxy === undefined ? {} : { proxy },
  );
  return { A, B, g };
}

/** The client got B's whole stream, byte for byte, and nothing of A's. */
function assertServedWholeByB(r: RawResponse): void {
  assert.equal(r.status, 200);
  assert.equal(servedBy(r), 'B');
  assert.equal(r.complete, true);
  assert.equal(r.text(), happyStream('resp_B').join(''), `client got:\n${r.text()}`);
}

const RATE_LIMITED = {
  error: { message: 'Rate limit reached for gpt-test', type: 'requests', code: 'rate_limit_exceeded' },
};

describe('pool: failover', () => {
  afterEach(() => h.cleanup());

  describe('429', () => {
    it('fails over to B, then skips A while it cools; the cooldown is per (upstream, model)', async () => {
      const { A, B, g } = await pair();
      A.answer(jsonError(429, RATE_LIMITED, { 'retry-after': '30' }));
      const t0 = Date.now();

      const r1 = await post(g);
      assertServedWholeByB(r1);
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);

      const cooldown = g.gw.pool.state.cooldown('A', MODEL, Date.now());
      assert.ok(cooldown, 'A should be cooling for the model');
      assert.equal(cooldown.kind, 'rate_limit');
      assert.ok(
        cooldown.until >= t0 + 30_000 && cooldown.until <= Date.now() + 30_000,
        `until ${cooldown.until}`,
      );

      // A is preferred (priority 0) but cooling: the next request goes straight to B.
      const r2 = await post(g);
      assert.equal(servedBy(r2), 'B');
      assert.equal(A.requests.length, 1, 'A must not be called while it cools');
      assert.equal(B.requests.length, 2);

      // Another model on the same account is not cooling.
      assert.equal(g.gw.pool.state.cooldown('A', OTHER_MODEL, Date.now()), undefined);
      const r3 = await post(g, { ...BODY, model: OTHER_MODEL });
      assert.equal(r3.status, 200);
      assert.equal(servedBy(r3), 'A');
      assert.equal(A.requests.length, 2);
      assert.equal(A.requests[1]!.json!.model, OTHER_MODEL);
      assert.equal(B.requests.length, 2);
    });

    it('retry-after-ms (which wins over Retry-After) sets a short cooldown; A is used again when it ends', async () => {
      const { A, B, g } = await pair();
      A.answer(jsonError(429, RATE_LIMITED, { 'retry-after': '30', 'retry-after-ms': '400' }));

      const r1 = await post(g);
      assertServedWholeByB(r1);
      const cooldown = g.gw.pool.state.cooldown('A', MODEL, Date.now());
      assert.ok(cooldown, 'A should be cooling');
      assert.equal(cooldown.kind, 'rate_limit');
      assert.ok(
        cooldown.until <= Date.now() + 400,
        'retry-after-ms should set the cooldown, not Retry-After',
      );

      await until(
        () => g.gw.pool.state.cooldown('A', MODEL, Date.now()) === undefined,
        'the 400ms cooldown should end',
      );
      const r2 = await post(g);
      assert.equal(r2.status, 200);
      assert.equal(servedBy(r2), 'A');
      assert.equal(A.requests.length, 2);
      assert.equal(B.requests.length, 1);
    });

    it('a rate-limit failure inside a 200 (response.failed "try again in 1.5s") fails over and cools A for 1.5s', async () => {
      const { A, B, g } = await pair();
      A.answer(async (_req, res) => {
        writeSseHead(res);
        res.end(
          frame('response.created', 0, { response: responseObject('resp_A', 'in_progress') }) +
            frame('response.failed', 1, {
              response: responseObject('resp_A', 'failed', {
                error: {
                  code: 'rate_limit_exceeded',
                  message: 'Rate limit reached. Please try again in 1.5s.',
                },
              }),
            }),
        );
      });
      const t0 = Date.now();
      const r = await post(g);
      assertServedWholeByB(r);
      const cooldown = g.gw.pool.state.cooldown('A', MODEL, Date.now());
      assert.ok(cooldown, 'A should be cooling');
      assert.equal(cooldown.kind, 'rate_limit');
      assert.ok(
        cooldown.until >= t0 + 1500 && cooldown.until <= Date.now() + 1500,
        `until ${cooldown.until}`,
      );
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
    });
  });

  describe('transient failures before the first byte', () => {
    it('A answers 500 → the request succeeds on B', async () => {
      const { A, B, g } = await pair();
      A.answer(jsonError(500, { error: { message: 'A exploded', type: 'server_error', code: null } }));
      const r = await post(g);
      assertServedWholeByB(r);
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
      assert.equal(g.gw.pool.state.cooldown('A', MODEL, Date.now())?.kind, 'transient');
      await until(() => g.gw.inflight === 0, 'the request should finish');
      const line = g.logs.find((l) => l.msg === 'request');
      assert.equal(line?.attempts, 2, 'the log line should count both attempts');
      assert.equal(line?.upstream, 'B');
    });

    it('A refuses the connection → the request succeeds on B, and A cools account-wide', async () => {
      const B = await h.upstream('B');
      const g = await h.gateway([
        { name: 'A', url: `http://127.0.0.1:${await closedPort()}`, priority: 0 },
        { name: 'B', url: B.url, priority: 1 },
      ]);
      const r = await post(g);
      assertServedWholeByB(r);
      assert.equal(B.requests.length, 1);
      assert.equal(g.gw.pool.state.cooldown('A', OTHER_MODEL, Date.now())?.kind, 'transient');
    });

    it('in-200 response.failed server_is_overloaded right after response.created → B; the client sees only B’s events', async () => {
      const { A, B, g } = await pair();
      A.answer(async (_req, res) => {
        writeSseHead(res, { 'x-served-by': 'A' });
        await writeEach(res, [
          frame('response.created', 0, { response: responseObject('resp_A', 'in_progress') }),
          frame('response.failed', 1, {
            response: responseObject('resp_A', 'failed', {
              error: { code: 'server_is_overloaded', message: 'The server is overloaded' },
            }),
          }),
        ]);
        res.end();
      });
      const r = await post(g);
      assertServedWholeByB(r);
      const events = parseSse(r.text());
      assert.equal(events.filter((e) => e.json.type === 'response.created').length, 1);
      assert.deepEqual(
        events.map((e) => e.json.sequence_number),
        [0, 1, 2, 3, 4, 5, 6, 7, 8],
      );
      assert.ok(!r.text().includes('resp_A'), 'nothing of A’s stream may reach the client');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
      assert.equal(g.gw.pool.state.cooldown('A', MODEL, Date.now())?.kind, 'transient');
    });

    it('every upstream overloaded inside its 200 → the client gets a 503 JSON error, never a 200 stream', async () => {
      const { A, B, g } = await pair();
      const overloaded =
        (name: string): UpstreamHandler =>
        (_req, res) => {
          writeSseHead(res);
          res.end(
            frame('response.created', 0, { response: responseObject(`resp_${name}`, 'in_progress') }) +
              frame('response.failed', 1, {
                response: responseObject(`resp_${name}`, 'failed', {
                  error: { code: 'server_is_overloaded', message: `${name} is overloaded` },
                }),
              }),
          );
        };
      A.fallback = overloaded('A');
      B.fallback = overloaded('B');
      const r = await post(g);
      assert.equal(r.status, 503);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = r.json().error as { message: string; code: string };
      assert.equal(err.message, 'B is overloaded');
      assert.equal(err.code, 'server_is_overloaded');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
    });

    it('A’s 200 stream ends (EOF) after response.created, before any output → B', async () => {
      const { A, B, g } = await pair();
      A.answer(async (_req, res) => {
        writeSseHead(res);
        await writeEach(res, happyStream('resp_A').slice(0, 2)); // created, in_progress
        res.end();
      });
      const r = await post(g);
      assertServedWholeByB(r);
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
    });

    it('A’s connection drops after response.created, before any output → B', async () => {
      const { A, B, g } = await pair();
      A.answer(async (_req, res) => {
        writeSseHead(res);
        await writeEach(res, happyStream('resp_A').slice(0, 1));
        (res.socket as Socket).destroy();
      });
      const r = await post(g);
      assertServedWholeByB(r);
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
    });
  });

  describe('no failover', () => {
    it('A answers 400: its body reaches the client unchanged and B is never called', async () => {
      const { A, B, g } = await pair();
      const body = `{"error": {"message": "Unsupported parameter: 'foo'", "type": "invalid_request_error", "param": "foo", "code": "unsupported_parameter"}}`;
      A.answer(jsonError(400, body));
      const r = await post(g);
      assert.equal(r.status, 400);
      assert.equal(r.text(), body);
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 0);
      assert.equal(
        g.gw.pool.state.cooldown('A', MODEL, Date.now()),
        undefined,
        'a request fault cools nothing',
      );
    });

    it('A answers 400 context_length_exceeded: passed through, B never called, A not cooled', async () => {
      const { A, B, g } = await pair();
      const body = JSON.stringify({
        error: {
          message: 'Your input exceeds the context window of this model.',
          type: 'invalid_request_error',
          param: 'input',
          code: 'context_length_exceeded',
        },
      });
      A.answer(jsonError(400, body, { 'x-request-id': 'req_ctx' }));
      const r = await post(g);
      assert.equal(r.status, 400);
      assert.equal(r.text(), body);
      assert.equal(B.requests.length, 0);
      assert.equal(g.gw.pool.state.cooldown('A', MODEL, Date.now()), undefined);

      // The next request still goes to A: nothing rotated.
      const r2 = await post(g);
      assert.equal(servedBy(r2), 'A');
      assert.equal(B.requests.length, 0);
    });

    it('in-200 response.failed context_length_exceeded after created → forwarded as a 200 stream, B never called', async () => {
      const { A, B, g } = await pair();
      const sent = [
        frame('response.created', 0, { response: responseObject('resp_A', 'in_progress') }),
        frame('response.in_progress', 1, { response: responseObject('resp_A', 'in_progress') }),
        frame('response.failed', 2, {
          response: responseObject('resp_A', 'failed', {
            error: { code: 'context_length_exceeded', message: 'Your input exceeds the context window.' },
          }),
        }),
      ];
      A.answer(async (_req, res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        res.end();
      });
      const r = await post(g);
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/event-stream/);
      assert.equal(r.complete, true);
      // Announced by the default errorEvent (2), then the upstream's own event, numbered after it.
      const events = parseSse(r.text());
      assert.ok(r.text().startsWith(sent.slice(0, 2).join('')));
      assert.deepEqual(
        events.slice(2).map((e) => [e.event, e.json.sequence_number]),
        [
          ['error', 2],
          ['response.failed', 3],
        ],
      );
      assert.equal(events[2]!.json.code, 'context_length_exceeded');
      assert.equal(
        events[3]!.data,
        parseSse(sent[2]!)[0]!.data.replace('"sequence_number":2', '"sequence_number":3'),
      );
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 0);
    });

    it('a drop after the first content event → response.failed on the client, no replay on B', async () => {
      const { A, B, g } = await pair();
      const sent = happyStream('resp_A').slice(0, 5); // through the first output_text.delta
      A.answer(async (_req, res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        (res.socket as Socket).destroy();
      });
      const r = await post(g);
      assert.equal(r.status, 200);
      assert.equal(r.complete, true, 'the stream should end with a terminal event');
      assert.ok(r.text().startsWith(sent.join('')), `client got:\n${r.text()}`);
      const events = parseSse(r.text());
      // The default errorEvent (5) announces it.
      assert.equal(events.length, 7);
      assert.equal(events[5]!.json.type, 'error');
      const last = events[6]!.json;
      assert.equal(last.type, 'response.failed');
      assert.equal(last.sequence_number, 6);
      assert.equal((last.response as { error: { code: string } }).error.code, 'server_error');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 0, 'nothing may be replayed after the first byte');
    });
  });

  it('proxy.maxAttempts: 2 with three failing upstreams → only two are tried', async () => {
    const ups = [await h.upstream('A'), await h.upstream('B'), await h.upstream('C')];
    for (const u of ups)
      u.fallback = jsonError(500, {
        error: { message: `${u.name} failed`, type: 'server_error', code: null },
      });
    const g = await h.gateway(
      ups.map((u, i) => ({ name: u.name, url: u.url, priority: i })),
      { proxy: { maxAttempts: 2 } },
    );
    const r = await post(g);
    assert.equal(r.status, 500);
    assert.equal((r.json().error as { message: string }).message, 'B failed', 'the last attempt’s error');
    assert.deepEqual(
      ups.map((u) => u.requests.length),
      [1, 1, 0],
    );
    await until(() => g.gw.inflight === 0, 'the request should finish');
    assert.equal(g.logs.find((l) => l.msg === 'request failed')?.attempts, 2);
  });
});
