/**
 * plugin dashboard, the feed: who may connect (the admin token, the gateway's own Origin), the
 * snapshot and delta shapes of protocol v1, what a request, a failover, a failure and a cooldown
 * look like on it, and batching.
 */
import assert from 'node:assert/strict';
import { startGateway, CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import {
  ADMIN_TOKEN,
  dashboardConfig,
  openFeed,
  refusal,
  type FeedClient,
  type FeedRequest,
} from '../helpers/dashboard-feed.js';
import { jsonError, openExchange, startScripted, type ScriptedUpstream } from '../helpers/pool.js';
import { postJson } from '../helpers/raw.js';

const BEARER = { authorization: `Bearer ${ADMIN_TOKEN}` };
const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

const REQUEST_KEYS = [
  'id',
  'time',
  'route',
  'model',
  'client',
  'upstream',
  'attempts',
  'status',
  'state',
  'ttfbMs',
  'durationMs',
  'tokensIn',
  'tokensOut',
  'error',
  'events',
].sort();
const UPSTREAM_KEYS = [
  'name',
  'type',
  'state',
  'coolingUntil',
  'reason',
  'inFlight',
  'maxConcurrency',
  'queue',
  'requests5m',
  'errors5m',
  'errorRate5m',
  'lastError',
  'quota',
  'refreshable',
].sort();
const POINT_KEYS = ['t', 'rps', 'errorRate', 'p50', 'p95', 'ttfb50', 'ttfb95'].sort();
const TOTALS_KEYS = ['requests', 'errors', 'inflight', 'tokensIn', 'tokensOut', 'startedAt'].sort();

const keys = (o: unknown) => Object.keys(o as object).sort();
const kinds = (r: FeedRequest) => r.events.map((e) => e.kind);

/** A rate limit the way OpenAI answers it. */
const rateLimited = (retryAfter: string) =>
  jsonError(
    429,
    {
      error: {
        message: 'Rate limit reached for gpt-test on tokens per min. Please try again in 30s.',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    },
    { 'retry-after': retryAfter },
  );

describe('plugin dashboard: feed', () => {
  let up1: ScriptedUpstream;
  let up2: ScriptedUpstream;
  const gateways: TestGateway[] = [];
  const feeds: FeedClient[] = [];

  beforeEach(async () => {
    up1 = await startScripted('up1');
    up2 = await startScripted('up2');
  });
  afterEach(async () => {
    while (feeds.length > 0) await feeds.pop()!.close();
    while (gateways.length > 0) await gateways.pop()!.close();
    await up1.close();
    await up2.close();
  });

  async function gateway(upstreams: ScriptedUpstream[], dashboard: Record<string, unknown> = {}) {
    const g = await startGateway(
      dashboardConfig({
        upstreams: upstreams.map((u, i) => ({
          name: u.name,
          baseUrl: `${u.url}/v1`,
          apiKey: `sk-upstream-${u.name}-secret`,
          priority: i,
          maxConcurrency: 8,
        })),
        dashboard,
      }),
    );
    gateways.push(g);
    return g;
  }

  async function feed(g: TestGateway, headers: Record<string, string> = BEARER): Promise<FeedClient> {
    const f = await openFeed(g.url, headers);
    feeds.push(f);
    await f.message((m) => m.type === 'snapshot');
    return f;
  }

  const request = (g: TestGateway, id: string, body: unknown = BODY) =>
    postJson(g.url, '/v1/responses', body, { 'x-request-id': id });

  const settled = (f: FeedClient, id: string) =>
    f.until(
      (s) => ['ok', 'error', 'aborted'].includes(s.requests.get(id)?.state ?? ''),
      `request ${id} settled`,
    );

  describe('who may connect', () => {
    it('no token, a wrong one, a client key, or the token in the URL: refused with 401', async () => {
      const g = await gateway([up1]);
      assert.equal(await refusal(g.url, {}), 401);
      assert.equal(await refusal(g.url, { authorization: 'Bearer wrong-token-0123' }), 401);
      assert.equal(await refusal(g.url, { authorization: `Bearer ${CLIENT_KEY}` }), 401);
      assert.equal(await refusal(g.url, { cookie: `tapgate_dash=${'0'.repeat(64)}` }), 401);
      await assert.rejects(openFeed(g.url, {}, `/dashboard/ws?token=${ADMIN_TOKEN}`), /refused with 401/);
    });

    it("an Origin other than the gateway's own: refused with 403", async () => {
      const g = await gateway([up1]);
      const port = new URL(g.url).port;
      for (const origin of [
        'http://evil.example',
        `http://localhost.evil.example:${port}`,
        'http://127.0.0.1:1',
        'null',
      ])
        assert.equal(await refusal(g.url, { ...BEARER, origin }), 403, origin);
    });

    it('the right Origin, or none (a program), with the token: the snapshot comes first', async () => {
      const g = await gateway([up1]);
      for (const headers of [BEARER, { ...BEARER, origin: new URL(g.url).origin }]) {
        const f = await openFeed(g.url, headers);
        feeds.push(f);
        const first = await f.message(() => true);
        assert.equal(first.type, 'snapshot');
        assert.equal(f.binaryFrames, 0);
      }
    });

    it('more than maxViewers at once: 503', async () => {
      const g = await gateway([up1], { maxViewers: 2 });
      await feed(g);
      await feed(g);
      assert.equal(await refusal(g.url, BEARER), 503);
      await feeds.pop()!.close();
      await feed(g);
    });
  });

  it('the snapshot has the documented shapes, with requests that came before it', async () => {
    const g = await gateway([up1, up2]);
    assert.equal((await request(g, 'before-1')).status, 200);
    const f = await openFeed(g.url, BEARER);
    feeds.push(f);
    const snap = await f.message((m) => m.type === 'snapshot');
    assert.deepEqual(keys(snap), ['now', 'requests', 'series', 'totals', 'type', 'upstreams', 'v']);
    assert.equal(snap.v, 1);
    assert.equal(typeof snap.now, 'number');
    const requests = snap.requests as FeedRequest[];
    assert.equal(requests.length, 1);
    assert.deepEqual(keys(requests[0]), REQUEST_KEYS);
    assert.equal(requests[0]!.id, 'before-1');
    const ups = snap.upstreams as Record<string, unknown>[];
    assert.deepEqual(
      ups.map((u) => u.name),
      ['up1', 'up2'],
    );
    for (const u of ups) assert.deepEqual(keys(u), UPSTREAM_KEYS);
    assert.deepEqual(ups[0], {
      name: 'up1',
      type: 'openai',
      state: 'ok',
      coolingUntil: null,
      reason: null,
      inFlight: 0,
      maxConcurrency: 8,
      queue: 0,
      requests5m: 1,
      errors5m: 0,
      errorRate5m: 0,
      lastError: null,
      quota: null,
      refreshable: false,
    });
    const series = snap.series as { step: number; points: unknown[] };
    assert.deepEqual(keys(series), ['points', 'step']);
    assert.equal(series.step, 1000);
    for (const p of series.points) assert.deepEqual(keys(p), POINT_KEYS);
    assert.deepEqual(keys(snap.totals), TOTALS_KEYS);
    assert.equal((snap.totals as { requests: number }).requests, 1);
  });

  it('a streamed request: route, model, client, upstream, status, ttfb, duration, tokens, events', async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    const res = await request(g, 'happy-1');
    assert.equal(res.status, 200);
    await settled(f, 'happy-1');
    const delta = await f.message(
      (m) => m.type === 'delta' && (m.requests as FeedRequest[]).some((r) => r.id === 'happy-1'),
    );
    assert.deepEqual(keys(delta), ['now', 'points', 'requests', 'totals', 'type', 'upstreams']);
    const r = f.state.requests.get('happy-1')!;
    assert.deepEqual(keys(r), REQUEST_KEYS);
    assert.equal(r.route, 'responses');
    assert.equal(r.model, 'gpt-test');
    assert.equal(r.client, 'tester');
    assert.equal(r.upstream, 'up1');
    assert.equal(r.attempts, 1);
    assert.equal(r.status, 200);
    assert.equal(r.state, 'ok');
    assert.equal(r.error, null);
    assert.equal(r.tokensIn, 10);
    assert.equal(r.tokensOut, 2);
    assert.ok(typeof r.ttfbMs === 'number' && r.ttfbMs >= 0);
    assert.ok(typeof r.durationMs === 'number' && r.durationMs >= r.ttfbMs);
    assert.ok(Math.abs(r.time - Date.now()) < 10_000);
    for (const k of ['start', 'attempt', 'response', 'first_byte', 'terminal', 'finish'] as const)
      assert.ok(kinds(r).includes(k), `event ${k} in ${kinds(r).join(',')}`);
    assert.equal(r.events[0]!.kind, 'start');
    assert.equal(r.events.at(-1)!.kind, 'finish');
    assert.equal(r.events.find((e) => e.kind === 'attempt')!.detail, '#1 up1');
    assert.equal(r.events.find((e) => e.kind === 'response')!.detail, 'up1 200');
    assert.equal(r.events.find((e) => e.kind === 'terminal')!.detail, 'response.completed');
    for (let i = 1; i < r.events.length; i++) assert.ok(r.events[i]!.t >= r.events[i - 1]!.t);
    const totals = f.state.totals!;
    assert.equal(totals.requests, 1);
    assert.equal(totals.inflight, 0);
    assert.equal(totals.tokensIn, 10);
    assert.equal(totals.tokensOut, 2);
    // Its second closes into a point with latency percentiles.
    const point = await f.until((s) => s.points.some((p) => p.rps >= 1), 'a point with the request', 4000);
    const p = point.points.find((q) => q.rps >= 1)!;
    assert.deepEqual(keys(p), POINT_KEYS);
    assert.equal(p.t % 1000, 0);
    assert.ok(p.p50 !== null && p.p95 !== null && p.p95 >= p.p50);
    assert.ok(p.ttfb50 !== null && p.ttfb95 !== null);
    assert.equal(p.errorRate, 0);
  });

  it('a request in flight shows as active, with the upstream’s slot in use', async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    const held = up1.holdNext(5);
    const pending = request(g, 'slow-1');
    const stream = await held;
    const s = await f.until(
      (st) => st.requests.get('slow-1')?.state === 'active' && st.upstreams[0]?.inFlight === 1,
      'slow-1 active',
    );
    const r = s.requests.get('slow-1')!;
    assert.equal(r.status, null);
    assert.equal(r.durationMs, null);
    assert.equal(r.upstream, 'up1');
    assert.equal(s.totals!.inflight, 1);
    stream.finish();
    assert.equal((await pending).status, 200);
    await f.until(
      (st) =>
        st.requests.get('slow-1')?.state === 'ok' &&
        st.upstreams[0]?.inFlight === 0 &&
        st.totals!.inflight === 0,
      'slow-1 done',
    );
  });

  it('a client that goes away mid-stream: aborted, 499', async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    const held = up1.holdNext(5);
    const exchange = await openExchange(g.url, BODY, { 'x-request-id': 'gone-1' });
    const stream = await held;
    await exchange.waitFor('Hello!');
    exchange.socket.destroy();
    await stream.closed;
    const s = await settled(f, 'gone-1');
    const r = s.requests.get('gone-1')!;
    assert.equal(r.state, 'aborted');
    assert.equal(r.status, 499);
    assert.equal(r.error, null);
    assert.equal(r.events.at(-1)!.detail, 'aborted 499');
    assert.equal(s.totals!.errors, 0);
  });

  it('a 429 with Retry-After: the mapped error on the request, the upstream cooling until then', async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    up1.answer(rateLimited('30'));
    const before = Date.now();
    const res = await request(g, 'limited-1');
    const after = Date.now();
    assert.equal(res.status, 429);
    const clientCode = (res.json().error as { code: string }).code;
    await settled(f, 'limited-1');
    const s = await f.until((st) => st.upstreams[0]?.state === 'cooling', 'up1 cooling');
    const r = s.requests.get('limited-1')!;
    assert.equal(r.state, 'error');
    assert.equal(r.status, 429);
    assert.equal(r.upstream, 'up1');
    assert.equal(r.model, 'gpt-test');
    assert.equal(r.client, 'tester');
    assert.deepEqual(r.error, {
      code: clientCode,
      message: 'Rate limit reached for gpt-test on tokens per min. Please try again in 30s.',
    });
    assert.equal(r.error!.code, 'rate_limit_exceeded');
    assert.ok(kinds(r).includes('response'));
    assert.equal(r.events.find((e) => e.kind === 'response')!.detail, 'up1 429');
    assert.equal(r.events.at(-1)!.detail, 'error 429');
    const card = s.upstreams[0]!;
    assert.equal(card.name, 'up1');
    assert.ok(card.coolingUntil !== null);
    assert.ok(
      card.coolingUntil >= before + 29_000 && card.coolingUntil <= after + 31_000,
      String(card.coolingUntil),
    );
    assert.match(card.reason ?? '', /^gpt-test: Rate limit reached/);
    assert.equal(card.requests5m, 1);
    assert.equal(card.errors5m, 1);
    assert.equal(card.errorRate5m, 1);
    assert.match(card.lastError?.message ?? '', /^429 rate_limit_exceeded: Rate limit reached/);
    assert.equal(s.totals!.errors, 1);
  });

  it('a failover: the failed attempt, then the next upstream, on one request', async () => {
    const g = await gateway([up1, up2]);
    const f = await feed(g);
    up1.answer(rateLimited('60'));
    assert.equal((await request(g, 'failover-1')).status, 200);
    const s = await settled(f, 'failover-1');
    const r = s.requests.get('failover-1')!;
    assert.equal(r.state, 'ok');
    assert.equal(r.attempts, 2);
    assert.equal(r.upstream, 'up2');
    assert.deepEqual(
      r.events
        .filter((e) => e.kind !== 'start' && e.kind !== 'first_byte')
        .map((e) => `${e.kind}:${e.detail}`),
      [
        'attempt:#1 up1',
        'response:up1 429',
        'failover:up1 rate_limit_exceeded',
        'attempt:#2 up2',
        'response:up2 200',
        'terminal:response.completed',
        'finish:ok 200',
      ],
    );
    const cards = await f.until((st) => st.upstreams[0]?.state === 'cooling', 'up1 cooling');
    assert.equal(cards.upstreams[1]!.state, 'ok');
    assert.equal(cards.upstreams[0]!.errors5m, 1);
    assert.equal(cards.upstreams[1]!.errors5m, 0);
    assert.equal(cards.upstreams[1]!.requests5m, 1);
  });

  it('batches: 30 requests at once arrive in far fewer than 30 messages', async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    const from = f.messages.length;
    const ids = Array.from({ length: 30 }, (_v, i) => `batch-${i}`);
    const results = await Promise.all(ids.map((id) => request(g, id)));
    assert.ok(results.every((r) => r.status === 200));
    await f.until((s) => ids.every((id) => s.requests.get(id)?.state === 'ok'), 'all 30 settled');
    const carrying = f.messages.slice(from).filter((m) => (m.requests as FeedRequest[]).length > 0);
    assert.ok(carrying.length <= 6, `${carrying.length} messages carried the 30 requests`);
    assert.ok(f.messages.length - from < 10, `${f.messages.length - from} messages in all`);
    // Each message lists a request at most once, newest first.
    for (const m of carrying) {
      const list = m.requests as FeedRequest[];
      assert.equal(new Set(list.map((r) => r.id)).size, list.length);
      for (let i = 1; i < list.length; i++) assert.ok(list[i - 1]!.time >= list[i]!.time);
    }
    assert.equal(f.state.totals!.requests, 30);
  });

  it("the dashboard's own requests are not shown", async () => {
    const g = await gateway([up1]);
    const f = await feed(g);
    await postJson(g.url, '/dashboard/login', 'token=x', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal((await request(g, 'after-login')).status, 200);
    await settled(f, 'after-login');
    assert.deepEqual([...f.state.requests.keys()], ['after-login']);
    assert.equal(f.state.totals!.requests, 1);
  });
});
