/**
 * Per-key limits (issue 14) on one gateway: each kind trips at exactly its number with OpenAI's
 * status, body and headers, and resets when its UTC window ends (a moved clock); the headers are on
 * every response of a limited key and on none of an unlimited one; a model the key may not use is
 * refused before any upstream is contacted; tokens are charged from streamed and JSON usage, and a
 * stream in flight is never cut off by the key going over.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { okStream, until, type ScriptedUpstream } from '../helpers/pool.js';
import { deadline, parseSse, postJson, rawRequest, type RawResponse } from '../helpers/raw.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import {
  FREE_KEY,
  JSON_BODY,
  jsonAnswer,
  limitsConfig,
  startClockedGateway,
  STREAM_BODY,
  TestClock,
  UPSTREAM_RATE_HEADERS,
} from './limit-helpers.js';

describe('per-key limits (auth.keys[].limits)', function () {
  this.timeout(20_000);
  const h = Harness.perTest();
  let clock: TestClock;
  let up: ScriptedUpstream;

  async function gateway(limits: Record<string, unknown>): Promise<TestGateway> {
    clock = new TestClock();
    up = await h.scripted('X');
    return h.track(await startClockedGateway(limitsConfig([{ name: 'X', url: up.url }], limits), clock));
  }

  const post = (g: TestGateway, body: unknown = STREAM_BODY, key = CLIENT_KEY): Promise<RawResponse> =>
    deadline(postJson(g.url, '/v1/responses', body, { authorization: `Bearer ${key}` }), 10_000, 'no answer');

  /** The x-ratelimit-* headers of a response, by name. */
  function rate(r: RawResponse): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers)) if (k.startsWith('x-ratelimit-')) out[k] = String(v);
    return out;
  }

  function assert429(r: RawResponse, message: string, retryAfter: string): void {
    assert.equal(r.status, 429, r.text());
    assert.deepEqual(r.json(), {
      error: { message, type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' },
    });
    assert.equal(r.headers['retry-after'], retryAfter);
  }

  it('requestsPerMinute: the Nth passes, the N+1th gets 429 with the headers, and the next minute admits again', async () => {
    const g = await gateway({ requestsPerMinute: 3 });
    for (let i = 1; i <= 3; i++) {
      const r = await post(g);
      assert.equal(r.status, 200);
      assert.deepEqual(rate(r), {
        'x-ratelimit-limit-requests': '3',
        'x-ratelimit-remaining-requests': String(3 - i),
        'x-ratelimit-reset-requests': ['50s', '48.5s', '47s'][i - 1],
      });
      clock.now += 1500;
    }
    // 14.5 s into the minute: 45.5 s left, Retry-After rounds up.
    const over = await post(g);
    assert429(
      over,
      'Rate limit reached for requests per minute on key "tester": Limit 3, Used 3. Please try again in 45.5s.',
      '46',
    );
    assert.deepEqual(rate(over), {
      'x-ratelimit-limit-requests': '3',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '45.5s',
    });
    assert.equal(over.headers['x-should-retry'], undefined, 'a minute limit may be retried');
    assert.equal(up.requests.length, 3, 'the refused request never reached the upstream');
    clock.now += 45_499;
    assert.equal((await post(g)).status, 429, '1 ms before the minute ends');
    clock.now += 1;
    const next = await post(g);
    assert.equal(next.status, 200);
    assert.equal(rate(next)['x-ratelimit-remaining-requests'], '2');
    assert.equal(rate(next)['x-ratelimit-reset-requests'], '1m0s');
  });

  it('tokensPerMinute: checked at admission against tokens used, charged from streamed and JSON usage', async () => {
    const g = await gateway({ tokensPerMinute: 30 });
    const first = await post(g, STREAM_BODY);
    assert.equal(first.status, 200);
    assert.deepEqual(rate(first), {
      'x-ratelimit-limit-tokens': '30',
      'x-ratelimit-remaining-tokens': '30',
      'x-ratelimit-reset-tokens': '50s',
    });
    up.answer(jsonAnswer('X'));
    const second = await post(g, JSON_BODY);
    assert.equal(second.status, 200);
    assert.equal(rate(second)['x-ratelimit-remaining-tokens'], '18', 'the stream charged its 12 tokens');
    // 24 used, under 30: admitted, and it may go over.
    const third = await post(g, STREAM_BODY);
    assert.equal(third.status, 200);
    assert.equal(rate(third)['x-ratelimit-remaining-tokens'], '6', 'the JSON answer charged its 12');
    const over = await post(g, STREAM_BODY);
    assert429(
      over,
      'Rate limit reached for tokens per minute on key "tester": Limit 30, Used 36. Please try again in 50s.',
      '50',
    );
    assert.equal(rate(over)['x-ratelimit-remaining-tokens'], '0');
    assert.equal(up.requests.length, 3);
    clock.nextMinute();
    const again = await post(g);
    assert.equal(again.status, 200);
    assert.equal(rate(again)['x-ratelimit-remaining-tokens'], '30');
  });

  it('tokensPerDay: 429 with x-should-retry: false until the UTC day ends', async () => {
    const g = await gateway({ tokensPerDay: 12 });
    const first = await post(g);
    assert.equal(first.status, 200);
    // 12:00:10 UTC: 11 h 59 min 50 s left in the day.
    assert.equal(rate(first)['x-ratelimit-reset-tokens'], '11h59m50s');
    const over = await post(g);
    assert429(
      over,
      'Rate limit reached for tokens per day on key "tester": Limit 12, Used 12. Please try again in 11h59m50s.',
      String(11 * 3600 + 59 * 60 + 50),
    );
    assert.equal(over.headers['x-should-retry'], 'false');
    clock.now = Date.UTC(2025, 0, 16, 0, 0, 0);
    const next = await post(g);
    assert.equal(next.status, 200);
    assert.equal(next.headers['x-should-retry'], undefined);
    assert.equal(rate(next)['x-ratelimit-remaining-tokens'], '12');
  });

  it('tokensPerMonth through the openai SDK: RateLimitError with its headers; the next month admits', async () => {
    const g = await gateway({ tokensPerMonth: 10, tokensPerDay: 1000 });
    const sdk = new OpenAI({
      fetch: recordingFetch,
      apiKey: CLIENT_KEY,
      baseURL: `${g.url}/v1`,
      maxRetries: 0,
      timeout: 10_000,
    });
    up.fallback = jsonAnswer('X');
    const ok = await sdk.responses.create({ model: 'gpt-test', input: 'hi' }).withResponse();
    assert.equal(ok.data.usage?.total_tokens, 12);
    // Without tokensPerMinute, the window with the least left is shown: the month's.
    assert.equal(ok.response.headers.get('x-ratelimit-limit-tokens'), '10');
    assert.equal(ok.response.headers.get('x-ratelimit-remaining-tokens'), '10');
    const err = await sdk.responses.create({ model: 'gpt-test', input: 'hi' }).then(
      () => assert.fail('admitted over the monthly budget'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OpenAI.RateLimitError, String(err));
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.equal(err.type, 'rate_limit_error');
    assert.match(err.message, /tokens per month on key "tester": Limit 10, Used 12/);
    assert.equal(err.headers.get('x-should-retry'), 'false');
    assert.equal(err.headers.get('x-ratelimit-remaining-tokens'), '0');
    // January 15th 12:00:10 → February 1st: 16 days 11:59:50.
    assert.equal(err.headers.get('retry-after'), String(16 * 86400 + 11 * 3600 + 59 * 60 + 50));
    assert.equal(up.requests.length, 1);
    clock.now = Date.UTC(2025, 1, 1, 0, 0, 1);
    assert.equal((await sdk.responses.create({ model: 'gpt-test', input: 'hi' })).status, 'completed');
  });

  it('concurrency: N streams held open, the N+1th gets 429; once one ends another is admitted', async () => {
    const g = await gateway({ concurrency: 2, requestsPerMinute: 100 });
    const held = [up.holdNext(5), up.holdNext(5)];
    const open = [post(g), post(g)];
    const streams = await Promise.all(held);
    const third = await post(g);
    assert429(
      third,
      'Rate limit reached for concurrent requests on key "tester": Limit 2, Used 2. Please try again in 1s.',
      '1',
    );
    // The refused request did not use up one of the minute's requests.
    assert.equal(rate(third)['x-ratelimit-remaining-requests'], '98');
    assert.equal(up.requests.length, 2);
    // An unlimited key is not held back by the limited one's slots.
    assert.equal((await post(g, STREAM_BODY, FREE_KEY)).status, 200);
    streams[0]!.finish();
    assert.equal((await open[0]!).status, 200);
    const fourth = await post(g);
    assert.equal(fourth.status, 200);
    assert.equal(rate(fourth)['x-ratelimit-remaining-requests'], '97');
    streams[1]!.finish();
    assert.equal((await open[1]!).status, 200);
    // Every slot came back, once: two at once are admitted again, a third is not.
    const again = [up.holdNext(5), up.holdNext(5)];
    const open2 = [post(g), post(g)];
    const s2 = await Promise.all(again);
    assert.equal((await post(g)).status, 429);
    for (const s of s2) s.finish();
    for (const r of await Promise.all(open2)) assert.equal(r.status, 200);
    assert.equal(g.gw.pool.state.inFlight('key:tester'), 0);
  });

  it('a slot is released on failed and aborted requests too', async () => {
    const g = await gateway({ concurrency: 1 });
    // Upstream failure (no other upstream): the request errors, its slot comes back.
    up.answer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"bad","type":"invalid_request_error"}}');
    });
    assert.equal((await post(g)).status, 400);
    // A client that leaves mid-stream.
    const held = up.holdNext(5);
    const ctl = new AbortController();
    const r = fetch(`${g.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(STREAM_BODY),
      signal: ctl.signal,
    });
    const s = await held;
    await (await r).body!.getReader().read();
    ctl.abort();
    await s.closed;
    await until(() => g.gw.inflight === 0, 'the aborted request finished');
    assert.equal(g.gw.pool.state.inFlight('key:tester'), 0);
    assert.equal((await post(g)).status, 200);
  });

  it('models: another model gets 403 model_not_allowed with no upstream request; listed and wildcard models pass', async () => {
    const g = await gateway({ models: ['gpt-5*', 'o3'] });
    const refused = await post(g, { model: 'gpt-4o', stream: true, input: 'hi' });
    assert.equal(refused.status, 403);
    assert.deepEqual(refused.json(), {
      error: {
        message: 'The API key "tester" may not use model "gpt-4o" (auth.keys[].limits.models)',
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_not_allowed',
      },
    });
    const none = await post(g, { input: 'hi' });
    assert.equal(none.status, 403);
    assert.equal((none.json().error as { code: string }).code, 'model_not_allowed');
    // `o3` is exact: no prefix match; `.` is no wildcard.
    assert.equal((await post(g, { model: 'o3-mini', input: 'hi' })).status, 403);
    assert.equal((await post(g, { model: 'gpt-5Xmini', input: 'hi' })).status, 200);
    assert.equal(up.requests.length, 1);
    for (const model of ['gpt-5', 'gpt-5.1-codex', 'o3'])
      assert.equal((await post(g, { model, stream: true, input: 'hi' })).status, 200, model);
    assert.equal((await post(g, { model: 'gpt-4o', input: 'hi' }, FREE_KEY)).status, 200);
    assert.equal(up.requests.length, 5);
  });

  it('headers on JSON, SSE, error and local answers of a limited key (the upstream’s own dropped); none for an unlimited key', async () => {
    const g = await gateway({ requestsPerMinute: 100, tokensPerMinute: 1000 });
    up.fallback = okStream('X', UPSTREAM_RATE_HEADERS);
    const sse = await post(g);
    assert.equal(sse.status, 200);
    assert.match(String(sse.headers['content-type']), /event-stream/);
    assert.equal(parseSse(sse.text()).at(-1)?.event, 'response.completed');
    const expect = (remaining: number, tokens: number) => ({
      'x-ratelimit-limit-requests': '100',
      'x-ratelimit-remaining-requests': String(remaining),
      'x-ratelimit-reset-requests': '50s',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': String(tokens),
      'x-ratelimit-reset-tokens': '50s',
    });
    assert.deepEqual(rate(sse), expect(99, 1000));
    up.answer(jsonAnswer('X', UPSTREAM_RATE_HEADERS));
    const json = await post(g, JSON_BODY);
    assert.equal(json.status, 200);
    assert.deepEqual(rate(json), expect(98, 988));
    up.answer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json', ...UPSTREAM_RATE_HEADERS });
      res.end('{"error":{"message":"bad","type":"invalid_request_error"}}');
    });
    const error = await post(g);
    assert.equal(error.status, 400);
    assert.deepEqual(rate(error), expect(97, 976));
    const models = await rawRequest(g.url, {
      method: 'GET',
      path: '/v1/models',
      headers: { authorization: `Bearer ${CLIENT_KEY}` },
    });
    assert.equal(models.status, 200);
    assert.deepEqual(rate(models), expect(96, 976));
    // The unlimited key: nothing of the gateway's; the upstream's own pass as before.
    up.answer(jsonAnswer('X', UPSTREAM_RATE_HEADERS));
    const free = await post(g, JSON_BODY, FREE_KEY);
    assert.equal(free.status, 200);
    assert.deepEqual(rate(free), UPSTREAM_RATE_HEADERS);
    const freeModels = await rawRequest(g.url, {
      method: 'GET',
      path: '/v1/models',
      headers: { authorization: `Bearer ${FREE_KEY}` },
    });
    assert.deepEqual(rate(freeModels), {});
  });

  it('a stream in flight is not cut when another request pushes the key over its tokens', async () => {
    const g = await gateway({ tokensPerMinute: 10 });
    const held = up.holdNext(5);
    const long = post(g);
    const stream = await held;
    // Admitted at 0 used; finishes with 12: the key is over.
    assert.equal((await post(g)).status, 200);
    const over = await post(g);
    assert.equal(over.status, 429);
    assert.match(String(over.json().error && (over.json().error as { message: string }).message), /Used 12/);
    stream.finish();
    const r = await long;
    assert.equal(r.status, 200);
    assert.ok(r.complete);
    assert.equal(parseSse(r.text()).at(-1)?.event, 'response.completed');
    // And its own 12 tokens were charged at its end.
    clock.now += 1000;
    const after = await post(g);
    assert.match((after.json().error as { message: string }).message, /Used 24/);
  });
});
