/**
 * Issue 14, per-account quota: the Codex backend's usage-window headers (`x-codex-{primary,secondary}-`
 * `used-percent`, `-window-minutes`, `-reset-after-seconds`, `-reset-at`) on every answer become the
 * account's quota in the pool state; the dashboard feed carries it; `pool.strategy: most-headroom`
 * sends the next requests to the account with the most headroom; two gateways on one real Redis
 * share it (once per change); malformed values are ignored.
 */
import assert from 'node:assert/strict';
import type { UpstreamQuota } from '../../core/index.js';
import { codexStream, type CodexBackend } from '../helpers/codex-backend.js';
import { accessToken } from '../helpers/codex-jwt.js';
import type { TokenServer } from '../helpers/codex-token-server.js';
import { ADMIN_TOKEN, openFeed, type FeedClient } from '../helpers/dashboard-feed.js';
import type { TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import { DEFAULT_PLUGINS, gatewayConfig } from '../helpers/proxy-config.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import { startRedis } from '../helpers/redis.js';
import { writeSseHead } from '../helpers/upstream.js';

const BODY = { model: 'gpt-5', input: 'hi', stream: true };
const HOUR_S = 3600;
const WEEK_S = 7 * 24 * HOUR_S;

describe('plugin codex-upstream: per-account quota and most-headroom', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let tokens: TokenServer;
  let backend: CodexBackend;
  /** The usage headers each account (by chatgpt-account-id) sends, on every answer. */
  let headersOf: Map<string, Record<string, string>>;
  /** Which account served each request, in order. */
  let served: string[];

  beforeEach(async () => {
    tokens = await h.tokenServer();
    backend = await h.codexBackend(() => true);
    headersOf = new Map();
    served = [];
    backend.answer = (rec, res) => {
      const account = String(rec.headers['chatgpt-account-id']);
      served.push(account);
      writeSseHead(res, headersOf.get(account) ?? {});
      res.end(codexStream().join(''));
    };
  });

  /** Codex upstreams named after their accounts, in this order. */
  function upstreams(names: string[]): Record<string, unknown>[] {
    return names.map((name) => ({
      name,
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      tokens: { access_token: accessToken(name), refresh_token: `rt-${name}`, account_id: name },
    }));
  }

  function gateway(
    names: string[],
    opts: { strategy?: string; dashboard?: boolean; state?: Record<string, unknown> } = {},
  ): Promise<TestGateway> {
    return h.gatewayYaml(
      gatewayConfig({
        pool: { strategy: opts.strategy ?? 'fill-first' },
        state: opts.state,
        upstreams: upstreams(names),
        plugins: opts.dashboard
          ? [...DEFAULT_PLUGINS, { name: 'dashboard', options: { token: ADMIN_TOKEN } }]
          : undefined,
      }),
    );
  }

  async function post(g: TestGateway): Promise<RawResponse> {
    const r = await deadline(
      postJson(g.url, '/v1/responses', BODY),
      10_000,
      'the client response never ended',
    );
    assert.equal(r.status, 200, r.text());
    return r;
  }

  /** The usage headers of an account at `primary` % (5 h) and `secondary` % (weekly). */
  function usage(primary: number, secondary: number, extra: Record<string, string> = {}) {
    return {
      'x-codex-primary-used-percent': String(primary),
      'x-codex-primary-window-minutes': '300',
      'x-codex-primary-reset-after-seconds': String(2 * HOUR_S),
      'x-codex-secondary-used-percent': String(secondary),
      'x-codex-secondary-window-minutes': '10080',
      'x-codex-secondary-reset-after-seconds': String(3 * 24 * HOUR_S),
      ...extra,
    };
  }

  const summary = (q: UpstreamQuota | undefined) =>
    q?.windows.map((w) => `${w.id} ${w.label} ${w.usedPercent}% ${w.windowMinutes ?? '-'}m`);

  it('the headers on a success become the account’s quota: windows, lengths, resets; the latest wins', async () => {
    const g = await gateway(['acct-a']);
    const resetAt = Math.floor(Date.now() / 1000) + WEEK_S - 100;
    headersOf.set('acct-a', {
      'x-codex-primary-used-percent': '12.4',
      'x-codex-primary-window-minutes': '300',
      'x-codex-primary-reset-after-seconds': '7980',
      'x-codex-secondary-used-percent': '40',
      'x-codex-secondary-window-minutes': '10080',
      'x-codex-secondary-reset-at': String(resetAt),
    });
    const t0 = Date.now();
    await post(g);
    const t1 = Date.now();
    const q = g.gw.pool.state.quota!('acct-a')!;
    assert.deepEqual(summary(q), ['primary 5h 12% 300m', 'secondary weekly 40% 10080m']);
    const [primary, secondary] = q.windows;
    assert.ok(primary!.resetsAt! >= t0 + 7_980_000 && primary!.resetsAt! <= t1 + 7_980_000, 'reset-after');
    assert.equal(secondary!.resetsAt, resetAt * 1000, 'reset-at (unix seconds)');
    assert.ok(q.observedAt >= t0 && q.observedAt <= t1);
    assert.deepEqual(g.gw.pool.state.view('acct-a', Date.now()).quota, q, 'the state view shows it');

    headersOf.set('acct-a', usage(15, 41));
    await post(g);
    assert.deepEqual(summary(g.gw.pool.state.quota!('acct-a')), [
      'primary 5h 15% 300m',
      'secondary weekly 41% 10080m',
    ]);
  });

  it('malformed values are ignored: the request is served, the good windows kept, nothing crashes', async () => {
    const g = await gateway(['acct-a']);
    headersOf.set('acct-a', usage(20, 30));
    await post(g);
    const good = g.gw.pool.state.quota!('acct-a');
    const bad = [
      'abc',
      '',
      ' ',
      '-5',
      '1e3',
      '0x10',
      'NaN',
      'Infinity',
      '12%',
      '1,5',
      '99999999999999999999',
    ];
    for (const b of bad) {
      headersOf.set('acct-a', { 'x-codex-primary-used-percent': b, 'x-codex-secondary-used-percent': b });
      await post(g);
    }
    assert.equal(g.gw.pool.state.quota!('acct-a'), good, 'no valid window: the last quota stays');

    // A valid percent with nonsense beside it: the percent counts, the rest is unknown.
    headersOf.set('acct-a', {
      'x-codex-primary-used-percent': '33',
      'x-codex-primary-window-minutes': 'five hours',
      'x-codex-primary-reset-after-seconds': 'soon',
      'x-codex-primary-reset-at': '-1',
      'x-codex-secondary-used-percent': 'lots',
      'x-codex-secondary-window-minutes': '10080',
    });
    await post(g);
    const q = g.gw.pool.state.quota!('acct-a')!;
    assert.deepEqual(q.windows, [
      { id: 'primary', label: '5h', usedPercent: 33, windowMinutes: null, resetsAt: null },
    ]);
    assert.equal(g.gw.pool.state.cooldown('acct-a', 'gpt-5', Date.now()), undefined, 'nothing cools');
    assert.equal(served.length, bad.length + 2);
  });

  it('most-headroom: the next requests go to the account with the most headroom; unknown first; a reset window is empty', async () => {
    const g = await gateway(['acct-a', 'acct-b', 'acct-c'], { strategy: 'most-headroom' });
    headersOf.set('acct-a', usage(70, 20));
    headersOf.set('acct-b', usage(10, 50));
    // c's 95 % window reset a minute ago: it counts as empty, so c is at 60 %, not 95 %.
    headersOf.set('acct-c', {
      ...usage(95, 60),
      'x-codex-primary-reset-after-seconds': '',
      'x-codex-primary-reset-at': String(Math.floor(Date.now() / 1000) - 60),
    });
    // Nobody reported: a tie, config order. Then each unknown account is preferred until it reports.
    for (let i = 0; i < 3; i++) await post(g);
    assert.deepEqual(served, ['acct-a', 'acct-b', 'acct-c']);
    // Most used: a 70, b 50, c 60. b has the most headroom, and keeps it.
    for (let i = 0; i < 3; i++) await post(g);
    assert.deepEqual(served.slice(3), ['acct-b', 'acct-b', 'acct-b']);
    // b fills up past c: the next goes to c (at 60 %: were its reset window counted, 95 %, a would win).
    headersOf.set('acct-b', usage(10, 65));
    await post(g);
    await post(g);
    await post(g);
    assert.deepEqual(served.slice(6), ['acct-b', 'acct-c', 'acct-c']);
    const c = g.gw.pool.state.quota!('acct-c')!;
    assert.equal(c.windows[0]!.usedPercent, 95, 'the window is kept as reported');
    assert.ok(c.windows[0]!.resetsAt! < Date.now());
  });

  it('the dashboard feed carries the quota of accounts that reported it, null for the others', async () => {
    const g = await gateway(['acct-a', 'acct-b'], { dashboard: true });
    const f: FeedClient = h.track(await openFeed(g.url));
    await f.message((m) => m.type === 'snapshot');
    headersOf.set('acct-a', usage(37, 81));
    const t0 = Date.now();
    await post(g);
    const s = await f.until((st) => st.upstreams[0]?.quota != null, 'acct-a quota on the feed');
    const [a, b] = s.upstreams;
    assert.equal(b!.quota, null, 'acct-b never answered');
    const q = a!.quota!;
    assert.deepEqual(Object.keys(q).sort(), ['observedAt', 'windows']);
    assert.deepEqual(
      q.windows.map((w) => [w.id, w.label, w.usedPercent, w.windowMinutes]),
      [
        ['primary', '5h', 37, 300],
        ['secondary', 'weekly', 81, 10080],
      ],
    );
    assert.ok(q.windows[0]!.resetsAt! >= t0 + 2 * HOUR_S * 1000);
    for (const w of q.windows)
      assert.deepEqual(Object.keys(w).sort(), ['id', 'label', 'resetsAt', 'usedPercent', 'windowMinutes']);
    const raw = f.raw.join('\n');
    assert.doesNotMatch(raw, /rt-acct|eyJ/, 'no refresh or access token on the feed');
  });

  it('two gateways on one Redis: the quota travels, once per change, and both prefer the same account', async () => {
    const redis = h.track(await startRedis());
    const state = { store: 'redis', url: redis.url };
    const A = await gateway(['acct-a', 'acct-b'], { strategy: 'most-headroom', state });
    const B = await gateway(['acct-a', 'acct-b'], { strategy: 'most-headroom', state });
    const watcher = h.track({
      client: redis.client.duplicate(),
      close() {
        this.client.disconnect();
        return Promise.resolve();
      },
    });
    const quotaMessages: string[] = [];
    await watcher.client.subscribe('tapgate:ch:pool');
    watcher.client.on('message', (_ch: string, msg: string) => {
      if (msg.includes('"t":"quota"')) quotaMessages.push(msg);
    });

    headersOf.set('acct-a', usage(60, 10));
    headersOf.set('acct-b', usage(5, 20));
    await post(A); // acct-a (both unknown: config order)
    await until(() => B.gw.pool.state.quota!('acct-a') !== undefined, 'B learns acct-a’s quota', 5000);
    assert.deepEqual(B.gw.pool.state.quota!('acct-a'), A.gw.pool.state.quota!('acct-a'));
    // B knows a is at 60 %: it goes to b, the unknown one.
    await post(B);
    assert.deepEqual(served, ['acct-a', 'acct-b']);
    await until(() => A.gw.pool.state.quota!('acct-b') !== undefined, 'A learns acct-b’s quota', 5000);
    // Both now send to b (20 % against 60 %).
    await post(A);
    await post(B);
    await post(A);
    assert.deepEqual(served.slice(2), ['acct-b', 'acct-b', 'acct-b']);
    // The same whole percents again and again: shared once per account, not once per answer.
    await until(() => quotaMessages.length >= 2, 'the two first reports on the channel', 5000);
    assert.equal(quotaMessages.length, 2, quotaMessages.join('\n'));
    // A change is shared, and stored for an instance that starts later.
    headersOf.set('acct-b', usage(6, 20));
    await post(A);
    await until(
      () => B.gw.pool.state.quota!('acct-b')?.windows[0]?.usedPercent === 6,
      'B learns acct-b moved',
      5000,
    );
    assert.equal(quotaMessages.length, 3);
    const stored = JSON.parse((await redis.client.get('tapgate:quota:acct-b'))!) as UpstreamQuota;
    assert.equal(stored.windows[0]!.usedPercent, 6);
    const ttl = await redis.client.pttl('tapgate:quota:acct-b');
    assert.ok(ttl > 2 * 24 * HOUR_S * 1000 && ttl <= 3 * 24 * HOUR_S * 1000 + 1000, `ttl ${ttl}`);
    const C = await gateway(['acct-a', 'acct-b'], { strategy: 'most-headroom', state });
    await until(
      () => C.gw.pool.state.quota!('acct-b') !== undefined,
      'a new instance reads the stored quota',
      5000,
    );
    assert.deepEqual(summary(C.gw.pool.state.quota!('acct-a')), summary(A.gw.pool.state.quota!('acct-a')));
  });
});
