/**
 * State a client can make the gateway keep is bounded (issue 11, items 4 and 21).
 *
 * Item 4: long session keys (`session-id`, `prompt_cache_key`) and model names are kept as
 * fixed-size digests, so the heap does not grow with what clients send; affinity bindings are capped
 * by `pool.affinity.maxEntries` (least recently used goes first) and per-model cooldowns per upstream
 * (soft ones go before rate limits); expired cooldowns are swept without the same model being looked
 * up again; the dashboard's recent requests keep a cut copy of a long model name, not the name.
 * Item 21: a 429 answered locally while an upstream's Retry-After runs carries that upstream's
 * reason, bounded and scrubbed.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { dashboardConfig } from '../helpers/dashboard-feed.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  jsonError,
  poolHarness,
  SERVED_BY,
  servedBy,
  until,
  type ScriptedUpstream,
} from '../helpers/pool.js';
import { upstreamKey } from '../helpers/proxy-config.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import type { UpstreamHandler } from '../helpers/upstream.js';
import { MemoryPoolState } from '../../core/pool/pool-state.js';
import { MAX_STATE_KEY_CHARS } from '../../core/pool/state-key.js';

const MODEL = 'gpt-test';
const MB = 1024 * 1024;

/** A full GC, with or without --expose-gc. */
const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  })();

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A small complete JSON Response, so what the test itself keeps per request stays small. */
function tinyResponse(name: string): UpstreamHandler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', [SERVED_BY]: name });
    res.end(JSON.stringify({ id: `resp_${name}`, object: 'response', status: 'completed', output: [] }));
  };
}

function post(g: TestGateway, body: Record<string, unknown>, headers: http.OutgoingHttpHeaders = {}) {
  return deadline(postJson(g.url, '/v1/responses', body, headers), 10_000, 'the client response never ended');
}

/**
 * A POST that keeps nothing once answered, for the memory measurements: raw.ts's responses stay
 * recorded for the secret scan, and their closures keep the request body alive with them.
 */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

function lean(g: TestGateway, body: unknown, headers: http.OutgoingHttpHeaders = {}): Promise<number> {
  const url = new URL('/v1/responses', g.url);
  const data = JSON.stringify(body);
  return deadline(
    new Promise<number>((resolve, reject) => {
      const req = http.request({
        method: 'POST',
        hostname: url.hostname,
        port: url.port,
        path: url.pathname,
        agent: keepAlive,
        headers: {
          authorization: `Bearer ${CLIENT_KEY}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
          ...headers,
        },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.end(data);
    }),
    10_000,
    'the client response never ended',
  );
}

/** Runs `n` requests, `width` at a time. */
async function spread(n: number, width: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

function stats(g: TestGateway) {
  return (g.gw.pool.state as MemoryPoolState).stats();
}

function errorOf(r: RawResponse): { message: string; type: string; code: string | null } {
  return r.json().error as { message: string; type: string; code: string | null };
}

const h = poolHarness();

describe('reliability: state a client can make the gateway keep is bounded', function () {
  this.timeout(60_000);
  afterEach(() => h.cleanup());
  after(() => keepAlive.destroy());

  async function twoUpstreams(
    pool: Record<string, unknown> = {},
  ): Promise<{ A: ScriptedUpstream; B: ScriptedUpstream; g: TestGateway }> {
    const A = await h.upstream('A');
    const B = await h.upstream('B');
    A.fallback = tinyResponse('A');
    B.fallback = tinyResponse('B');
    const g = await h.gateway(
      [
        { name: 'A', url: A.url },
        { name: 'B', url: B.url },
      ],
      { pool },
    );
    return { A, B, g };
  }

  describe('long session keys (item 4)', () => {
    it('100 × 1 MB prompt_cache_keys and 2,000 × 12 KB session-ids are kept as digests: the heap does not hold them', async () => {
      const { A, B, g } = await twoUpstreams();
      const warm = await post(g, { model: MODEL, input: 'hi', prompt_cache_key: 'warm-up' });
      assert.equal(warm.status, 200);
      A.requests.length = 0;
      B.requests.length = 0;
      const before = heapUsed();
      const started = performance.now();

      await spread(100, 4, async (i) => {
        const key = String(i).padStart(4, '0') + 'k'.repeat(MB);
        assert.equal(await lean(g, { model: MODEL, input: 'hi', prompt_cache_key: key }), 200);
      });
      await spread(2000, 16, async (i) => {
        const id = String(i).padStart(5, '0') + 's'.repeat(12 * 1024);
        assert.equal(await lean(g, { model: MODEL, input: 'hi' }, { 'session-id': id }), 200);
      });
      const elapsed = performance.now() - started;
      // The upstreams' own records hold every body: not the gateway's memory.
      A.requests.length = 0;
      B.requests.length = 0;
      const growth = heapUsed() - before;

      const s = stats(g);
      console.log(
        `      2,100 long session keys: heap +${(growth / MB).toFixed(1)} MB, ${s.bindingKeyChars} key characters kept, ${Math.round(elapsed)} ms`,
      );
      assert.equal(s.bindings, 1 + 100 + 2000, 'one binding per session');
      assert.ok(
        s.bindingKeyChars <= s.bindings * (MAX_STATE_KEY_CHARS + 2),
        `binding keys hold ${s.bindingKeyChars} characters for ${s.bindings} bindings`,
      );
      // Unbounded, the keys alone are 100 MB + 24 MB; bounded, a binding is a few hundred bytes.
      assert.ok(growth < 12 * MB, `heap grew by ${(growth / MB).toFixed(1)} MB`);
    });

    it('a long session key keeps its session on one upstream', async () => {
      const { g } = await twoUpstreams();
      const body = { model: MODEL, input: 'hi', prompt_cache_key: 'p'.repeat(256 * 1024) };
      const header = { 'session-id': 'h'.repeat(12 * 1024) };
      const viaKey: string[] = [];
      const viaHeader: string[] = [];
      for (let i = 0; i < 4; i++) {
        viaKey.push(servedBy(await post(g, body))!);
        viaHeader.push(servedBy(await post(g, { model: MODEL, input: 'hi' }, header))!);
      }
      assert.equal(new Set(viaKey).size, 1, `the prompt_cache_key session hopped: ${viaKey.join(',')}`);
      assert.equal(new Set(viaHeader).size, 1, `the session-id session hopped: ${viaHeader.join(',')}`);
    });
  });

  describe('pool.affinity.maxEntries (item 4)', () => {
    it('with maxEntries 50, 200 sessions keep the 50 most recently used bindings, and affinity works for them', async () => {
      const { g } = await twoUpstreams({ affinity: { maxEntries: 50 } });
      const state = g.gw.pool.state;
      const served: string[] = [];
      for (let i = 0; i < 200; i++) {
        const r = await post(g, { model: MODEL, input: 'hi' }, { 'session-id': `sess-${i}` });
        served.push(servedBy(r)!);
      }
      assert.equal(stats(g).bindings, 50);
      const now = Date.now();
      for (let i = 0; i < 150; i++) assert.equal(state.affinity(`s:sess-${i}`, now), undefined, `sess-${i}`);
      for (let i = 150; i < 200; i++)
        assert.equal(state.affinity(`s:sess-${i}`, now), served[i], `sess-${i}`);

      // Use renews: sess-150, the oldest kept, is used again, then 10 new sessions push out the
      // 10 least recently used (sess-151…160), not sess-150.
      for (let k = 0; k < 3; k++) {
        const r = await post(g, { model: MODEL, input: 'hi' }, { 'session-id': 'sess-150' });
        assert.equal(servedBy(r), served[150], 'a kept session stays on its upstream');
      }
      for (let i = 200; i < 210; i++)
        await post(g, { model: MODEL, input: 'hi' }, { 'session-id': `sess-${i}` });
      assert.equal(stats(g).bindings, 50);
      const later = Date.now();
      assert.equal(state.affinity('s:sess-150', later), served[150], 'a renewed binding is kept');
      for (let i = 151; i <= 160; i++)
        assert.equal(state.affinity(`s:sess-${i}`, later), undefined, `sess-${i}`);
      for (let i = 161; i < 200; i++)
        assert.equal(state.affinity(`s:sess-${i}`, later), served[i], `sess-${i}`);
    });

    it('expired bindings are swept by later binds, without their sessions coming back', async () => {
      const { g } = await twoUpstreams({ affinity: { ttl: '200ms' } });
      for (let i = 0; i < 100; i++)
        assert.equal(
          (await post(g, { model: MODEL, input: 'hi' }, { 'session-id': `old-${i}` })).status,
          200,
        );
      const boundAt = Date.now();
      assert.equal(stats(g).bindings, 100);
      // Past the TTL and the sweep interval (1 s), one new session's bind drops the 100.
      await until(() => Date.now() > boundAt + 1100, 'the bindings and the sweep interval should pass', 3000);
      await post(g, { model: MODEL, input: 'hi' }, { 'session-id': 'new' });
      assert.equal(stats(g).bindings, 1);
    });

    it('is checked at boot: 0 is refused with its key path', async () => {
      await assert.rejects(
        () =>
          h.gateway([{ name: 'A', url: 'http://127.0.0.1:9' }], { pool: { affinity: { maxEntries: 0 } } }),
        /pool\.affinity\.maxEntries: Too small: expected number to be >=1/,
      );
    });
  });

  describe('per-model cooldowns (item 4)', () => {
    it('500 distinct 64 KB model names answered 500: digests kept, swept once expired without those models looked up again', async () => {
      const A = await h.upstream('A');
      A.fallback = jsonError(500, { error: { message: 'A exploded', type: 'server_error', code: null } });
      const g = await h.gateway([{ name: 'A', url: A.url }], { proxy: { transientCooldown: '200ms' } });
      const warm = await post(g, { model: 'warm-up', input: 'hi' });
      assert.equal(warm.status, 500);
      A.requests.length = 0;
      // The captured log (the test's copy of stdout) holds each access line, the model in it whole.
      const logChars = () => g.rawLogs().length;
      const logsBefore = logChars();
      const before = heapUsed();

      const model = (i: number) => String(i).padStart(4, '0') + 'm'.repeat(64 * 1024);
      await spread(500, 8, async (i) => {
        assert.equal(await lean(g, { model: model(i), input: 'hi' }), 500);
      });
      const cooledAt = Date.now();
      A.requests.length = 0;
      const growth = heapUsed() - before - (logChars() - logsBefore);
      const s = stats(g);
      console.log(
        `      500 long model names cooled: heap +${(growth / MB).toFixed(1)} MB, ${s.cooldowns} entries, ${s.cooldownKeyChars} key characters kept`,
      );
      assert.ok(s.cooldowns >= 1 && s.cooldowns <= 501, `${s.cooldowns} cooldown entries`);
      assert.ok(
        s.cooldownKeyChars <= s.cooldowns * MAX_STATE_KEY_CHARS,
        `cooldown keys hold ${s.cooldownKeyChars} characters for ${s.cooldowns} entries`,
      );
      // Unbounded, the keys alone are 32 MB.
      assert.ok(growth < 8 * MB, `heap grew by ${(growth / MB).toFixed(1)} MB`);

      // Once they have ended (200 ms) and the sweep interval (1 s) has passed, the next cooldown
      // written for another model sweeps them all.
      await until(
        () => Date.now() > cooledAt + 1100,
        'the cooldowns and the sweep interval should pass',
        3000,
      );
      const r = await post(g, { model: 'another-model', input: 'hi' });
      const lastAt = Date.now();
      assert.equal(r.status, 500);
      assert.equal(stats(g).cooldowns, 1, 'only the new cooldown is left');

      // A dashboard's read of the upstream's state sweeps too.
      await until(() => Date.now() > lastAt + 250, 'the last cooldown should end', 3000);
      assert.deepEqual(g.gw.pool.state.view('A', Date.now()).cooldowns, []);
      assert.equal(stats(g).cooldowns, 0);
    });

    it('a view shows a long model name cut short', async () => {
      const A = await h.upstream('A');
      A.fallback = jsonError(500, { error: { message: 'A exploded', type: 'server_error', code: null } });
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      const r = await post(g, { model: 'v'.repeat(64 * 1024), input: 'hi' });
      assert.equal(r.status, 500);
      const [c] = g.gw.pool.state.view('A', Date.now()).cooldowns;
      assert.ok(c !== undefined && c.model !== null);
      assert.ok(c.model.startsWith('vvvv') && c.model.length < 128, `label of ${c.model.length} characters`);
      assert.equal(c.reason, 'A exploded');
    });

    it('the per-upstream cap evicts expired ones, then the soft one ending soonest; rate limits stay', () => {
      const state = new MemoryPoolState({ maxModelCooldowns: 10 });
      const now = Date.now();
      state.cool('A', 'limited', now + 60_000, 'Rate limit reached', 'rate_limit');
      for (let i = 0; i < 9; i++) state.cool('A', `m${i}`, now + 10_000 + i, 'boom', 'transient');
      assert.equal(state.stats().cooldowns, 10);
      // Full: m0 ends soonest among the soft ones.
      state.cool('A', 'new-1', now + 50_000, 'boom', 'transient');
      assert.equal(state.stats().cooldowns, 10);
      assert.equal(state.cooldown('A', 'm0', now), undefined);
      assert.ok(state.cooldown('A', 'm1', now) !== undefined);
      assert.equal(state.cooldown('A', 'limited', now)?.kind, 'rate_limit');
      for (let i = 0; i < 100; i++) state.cool('A', `flood-${i}`, now + 20_000, 'boom', 'transient');
      assert.equal(state.stats().cooldowns, 10);
      assert.equal(
        state.cooldown('A', 'limited', now)?.kind,
        'rate_limit',
        'a flood of 5xx never evicts a rate limit',
      );
      // The account-wide cooldown is apart: no model name stands for it.
      state.cool('A', '*', now + 60_000, 'model star', 'rate_limit');
      assert.equal(state.cooldown('A', 'other', now), undefined);
    });
  });

  describe('other state that outlives a request (item 4 audit)', () => {
    it('the dashboard’s recent requests keep a cut copy of a long model name, not the name', async () => {
      const A = await h.upstream('A');
      A.fallback = tinyResponse('A');
      const g = await startGateway(
        dashboardConfig({
          upstreams: [{ name: 'A', baseUrl: `${A.url}/v1`, apiKey: upstreamKey('A') }],
          dashboard: { recent: 40 },
        }),
      );
      try {
        assert.equal(await lean(g, { model: 'warm-up', input: 'hi' }), 200);
        A.requests.length = 0;
        const logChars = () => g.rawLogs().length;
        const logsBefore = logChars();
        const before = heapUsed();
        await spread(40, 4, async (i) => {
          assert.equal(
            await lean(g, { model: String(i).padStart(3, '0') + 'd'.repeat(MB), input: 'hi' }),
            200,
          );
        });
        A.requests.length = 0;
        const growth = heapUsed() - before - (logChars() - logsBefore);
        // Unbounded, the 40 recent requests would hold 40 MB of model names.
        assert.ok(growth < 8 * MB, `heap grew by ${(growth / MB).toFixed(1)} MB`);
      } finally {
        await g.close();
      }
    });
  });

  describe('a cooldown answered locally says why (item 21)', () => {
    const REASON =
      'Rate limit reached for gpt-test in organization org-1 on requests per min (RPM): Limit 3, Used 3';

    it('within the upstream’s Retry-After, the gateway answers 429 itself with the upstream’s reason', async () => {
      const A = await h.upstream('A');
      A.answer(
        jsonError(
          429,
          { error: { message: REASON, type: 'requests', code: 'rate_limit_exceeded' } },
          { 'retry-after': '6' },
        ),
      );
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      const r1 = await post(g, { model: MODEL, input: 'hi' });
      assert.equal(r1.status, 429);
      assert.equal(errorOf(r1).message, REASON);

      const r2 = await post(g, { model: MODEL, input: 'hi' });
      assert.equal(A.requests.length, 1, 'the upstream is not contacted while it is cooling');
      assert.equal(r2.status, 429);
      const retryAfter = Number(r2.headers['retry-after']);
      assert.ok(retryAfter >= 5 && retryAfter <= 6, `Retry-After ${retryAfter}`);
      const err = errorOf(r2);
      assert.equal(err.type, 'rate_limit_error');
      assert.match(
        err.message,
        /^Every upstream for gpt-test is rate limited or cooling down; retry in [56]s/,
      );
      assert.ok(err.message.endsWith(`(A: ${REASON})`), err.message);
    });

    it('the reason is scrubbed and bounded, and so is the model', async () => {
      const A = await h.upstream('A');
      const secretReason = `Incorrect API key provided: ${upstreamKey('A')}. ${'x'.repeat(20_000)}`;
      A.answer(
        jsonError(429, { error: { message: secretReason, type: 'requests' } }, { 'retry-after': '6' }),
      );
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      const model = 'n'.repeat(64 * 1024);
      assert.equal((await post(g, { model, input: 'hi' })).status, 429);

      const r2 = await post(g, { model, input: 'hi' });
      assert.equal(A.requests.length, 1);
      assert.equal(r2.status, 429);
      const { message } = errorOf(r2);
      assert.ok(message.length < 1024, `a message of ${message.length} characters`);
      assert.ok(!message.includes(upstreamKey('A')), 'the upstream key is not repeated');
      assert.match(message, /\(A: Incorrect API key provided: \[redacted\]\. x+…\(\d+ more characters\)\)$/);
    });
  });
});
