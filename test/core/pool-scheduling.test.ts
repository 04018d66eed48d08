/**
 * Scheduling: the pool.strategy choices (weighted round-robin, least-in-flight, fill-first),
 * priority tiers, and session affinity (session-id header or prompt_cache_key), which keeps a
 * session on one account, moves it for good when that account cools, and can be turned off.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { jsonError, poolHarness, servedBy, until, type ScriptedUpstream } from '../helpers/pool.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';

const MODEL = 'gpt-test';
const BODY = { model: MODEL, stream: true, input: 'hi' };

const h = poolHarness();

function post(
  g: TestGateway,
  body: Record<string, unknown> = BODY,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', body, headers), 5000, 'the client response never ended');
}

/** Who served each of `n` sequential requests. */
async function sequence(g: TestGateway, n: number, headers: Record<string, string> = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await post(g, BODY, headers);
    assert.equal(r.status, 200);
    out.push(servedBy(r)!);
  }
  return out;
}

function count(names: string[], name: string): number {
  return names.filter((n) => n === name).length;
}

async function twoUpstreams(pool: Record<string, unknown> = {}): Promise<{
  A: ScriptedUpstream;
  B: ScriptedUpstream;
  g: TestGateway;
  by: Record<string, ScriptedUpstream>;
}> {
  const A = await h.upstream('A');
  const B = await h.upstream('B');
  const g = await h.gateway(
    [
      { name: 'A', url: A.url },
      { name: 'B', url: B.url },
    ],
    { pool },
  );
  return { A, B, g, by: { A, B } };
}

describe('pool: scheduling', () => {
  afterEach(() => h.cleanup());

  describe('strategies', () => {
    it('round-robin with weights 3:1 over 8 sequential requests → 6/2, smoothly spread', async () => {
      const A = await h.upstream('A');
      const B = await h.upstream('B');
      const g = await h.gateway(
        [
          { name: 'A', url: A.url, weight: 3 },
          { name: 'B', url: B.url, weight: 1 },
        ],
        { pool: { strategy: 'round-robin' } },
      );
      const served = await sequence(g, 8);
      assert.equal(count(served, 'A'), 6, served.join(','));
      assert.equal(count(served, 'B'), 2, served.join(','));
      assert.equal(A.requests.length, 6);
      assert.equal(B.requests.length, 2);
      // Smooth: B's two turns are spread out, one in each half.
      assert.equal(count(served.slice(0, 4), 'B'), 1, served.join(','));
    });

    it('least-in-flight: while a request is open on A, new requests go to B', async () => {
      const { A, B, g } = await twoUpstreams({ strategy: 'least-in-flight' });
      const held = A.holdNext();
      const open = post(g);
      const stream = await held;
      assert.equal(g.gw.pool.state.inFlight('A'), 1);

      // Round-robin would alternate; least-in-flight sends both to the idle B.
      assert.deepEqual(await sequence(g, 2), ['B', 'B']);
      assert.equal(A.requests.length, 1);

      stream.finish();
      const r = await open;
      assert.equal(servedBy(r), 'A');
      assert.equal(r.complete, true);
      // Both idle again: the tie goes to the first.
      await until(() => g.gw.pool.state.inFlight('A') === 0, 'A’s slot should be free');
      assert.deepEqual(await sequence(g, 1), ['A']);
      assert.equal(B.requests.length, 2);
    });

    it('fill-first: every request goes to the first upstream until it is at maxConcurrency, then to the next', async () => {
      const A = await h.upstream('A');
      const B = await h.upstream('B');
      const g = await h.gateway(
        [
          { name: 'A', url: A.url, maxConcurrency: 2 },
          { name: 'B', url: B.url },
        ],
        { pool: { strategy: 'fill-first' } },
      );
      assert.deepEqual(await sequence(g, 4), ['A', 'A', 'A', 'A']);

      const held1 = A.holdNext();
      const open1 = post(g);
      const s1 = await held1;
      const held2 = A.holdNext();
      const open2 = post(g);
      const s2 = await held2;
      assert.equal(g.gw.pool.state.inFlight('A'), 2);

      assert.deepEqual(await sequence(g, 2), ['B', 'B'], 'A is full');
      assert.equal(A.requests.length, 6);

      s1.finish();
      s2.finish();
      assert.deepEqual([servedBy(await open1), servedBy(await open2)], ['A', 'A']);
      await until(() => g.gw.pool.state.inFlight('A') === 0, 'A’s slots should be free');
      assert.deepEqual(await sequence(g, 2), ['A', 'A'], 'A has room again');
      assert.equal(B.requests.length, 2);
    });

    it('priority tiers: priority 0 is preferred; priority 1 serves only while priority 0 is full or cooling', async () => {
      const low = await h.upstream('low');
      const high = await h.upstream('high');
      // Listed first, but in the worse tier.
      const g = await h.gateway([
        { name: 'low', url: low.url, priority: 1 },
        { name: 'high', url: high.url, priority: 0, maxConcurrency: 1 },
      ]);
      assert.deepEqual(await sequence(g, 3), ['high', 'high', 'high']);

      // Full: the next request overflows to the lower tier.
      const held = high.holdNext();
      const open = post(g);
      const stream = await held;
      assert.deepEqual(await sequence(g, 1), ['low']);
      stream.finish();
      assert.equal(servedBy(await open), 'high');
      await until(() => g.gw.pool.state.inFlight('high') === 0, 'high’s slot should be free');
      assert.deepEqual(await sequence(g, 1), ['high']);

      // Cooling: a 429 moves this request and the next ones to the lower tier.
      high.answer(
        jsonError(
          429,
          { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
          { 'retry-after': '30' },
        ),
      );
      assert.deepEqual(await sequence(g, 3), ['low', 'low', 'low']);
      assert.equal(high.requests.length, 6);
      assert.equal(low.requests.length, 4);
    });
  });

  describe('eligibility', () => {
    it('a request goes only to upstreams that serve its model; a model nobody serves gets 503', async () => {
      const A = await h.upstream('A');
      const B = await h.upstream('B');
      const g = await h.gateway([
        { name: 'A', url: A.url, models: ['gpt-a'] },
        { name: 'B', url: B.url, models: ['gpt-b', 'gpt-test'] },
      ]);
      for (let i = 0; i < 3; i++) {
        assert.equal(servedBy(await post(g, { ...BODY, model: 'gpt-a' })), 'A');
        assert.equal(servedBy(await post(g, { ...BODY, model: 'gpt-b' })), 'B');
      }
      const r = await post(g, { ...BODY, model: 'gpt-nobody' });
      assert.equal(r.status, 503);
      const err = r.json().error as { message: string; code: string };
      assert.match(err.message, /No upstream serves model gpt-nobody/);
      assert.equal(err.code, 'no_upstream_available');
      assert.equal(A.requests.length + B.requests.length, 6);
    });

    it('a disabled upstream (empty apiKey) is never picked; with none left, 503 says why', async () => {
      const A = await h.upstream('A');
      const B = await h.upstream('B');
      const g = await h.gateway([
        { name: 'A', url: A.url, apiKey: '' },
        { name: 'B', url: B.url },
      ]);
      assert.deepEqual(await sequence(g, 3), ['B', 'B', 'B']);
      assert.equal(A.requests.length, 0);

      const solo = await h.gateway([{ name: 'A', url: A.url, apiKey: '' }]);
      const r = await post(solo);
      assert.equal(r.status, 503);
      assert.match(
        (r.json().error as { message: string }).message,
        /Every upstream is disabled \(A: no API key/,
      );
      assert.equal(A.requests.length, 0);
    });
  });

  describe('session affinity', () => {
    it('the same session-id stays on one account across 6 requests; other sessions spread', async () => {
      const { A, B, g } = await twoUpstreams({ strategy: 'round-robin' });
      // Round-robin alone would alternate these six.
      const one = await sequence(g, 6, { 'session-id': 'sess-one' });
      assert.equal(new Set(one).size, 1, `sess-one hopped: ${one.join(',')}`);
      assert.equal(count(one, 'A') + count(one, 'B'), 6);
      // New sessions are spread by the strategy, and each sticks where it landed.
      const two = await sequence(g, 3, { 'session-id': 'sess-two' });
      const three = await sequence(g, 3, { 'session-id': 'sess-three' });
      assert.equal(new Set(two).size, 1, `sess-two hopped: ${two.join(',')}`);
      assert.equal(new Set(three).size, 1, `sess-three hopped: ${three.join(',')}`);
      assert.notEqual(two[0], three[0], 'two new sessions should land on different accounts');
      assert.equal(A.requests.length + B.requests.length, 12);
    });

    it('prompt_cache_key in the body is a session key too', async () => {
      const { g } = await twoUpstreams();
      const run = async (key: string) => {
        const out: string[] = [];
        for (let i = 0; i < 4; i++) out.push(servedBy(await post(g, { ...BODY, prompt_cache_key: key }))!);
        return out;
      };
      const one = await run('cache-one');
      const two = await run('cache-two');
      assert.equal(new Set(one).size, 1, `cache-one hopped: ${one.join(',')}`);
      assert.equal(new Set(two).size, 1, `cache-two hopped: ${two.join(',')}`);
      assert.notEqual(one[0], two[0]);
    });

    it('the binding moves when its account cools (429), and then stays on the new one after the cooldown ends', async () => {
      const { g, by } = await twoUpstreams();
      const session = { 'session-id': 'sess-move' };
      const [first, second] = await sequence(g, 2, session);
      assert.equal(first, second);
      const bound = by[first!]!;
      const other = by[first === 'A' ? 'B' : 'A']!;

      bound.answer(
        jsonError(
          429,
          { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
          { 'retry-after-ms': '300' },
        ),
      );
      const r = await post(g, BODY, session);
      assert.equal(servedBy(r), other.name, 'the request fails over');
      assert.equal(bound.requests.length, 3);

      await until(
        () => g.gw.pool.state.cooldown(bound.name, MODEL, Date.now()) === undefined,
        'the 300ms cooldown should end',
      );
      // The old account is available again, but the session stays where it moved.
      assert.deepEqual(await sequence(g, 4, session), Array(4).fill(other.name));
      assert.equal(bound.requests.length, 3);
    });

    it('a busy bound account serves this request elsewhere but keeps the binding', async () => {
      const A = await h.upstream('A');
      const B = await h.upstream('B');
      const g = await h.gateway([
        { name: 'A', url: A.url, maxConcurrency: 1 },
        { name: 'B', url: B.url, maxConcurrency: 1 },
      ]);
      const by: Record<string, ScriptedUpstream> = { A, B };
      const session = { 'session-id': 'sess-busy' };
      const [first] = await sequence(g, 1, session);
      const bound = by[first!]!;
      const other = by[first === 'A' ? 'B' : 'A']!;

      // The bound account is full with this session's own open request: the next one goes elsewhere…
      const held = bound.holdNext();
      const open = post(g, BODY, session);
      const stream = await held;
      assert.deepEqual(await sequence(g, 1, session), [other.name]);
      stream.finish();
      assert.equal(servedBy(await open), bound.name);
      await until(() => g.gw.pool.state.inFlight(bound.name) === 0, 'the slot should be free');

      // …and the session is back on its account once it has room.
      assert.deepEqual(await sequence(g, 3, session), Array(3).fill(bound.name));
      assert.equal(other.requests.length, 1);
    });

    it('previous_response_id is a session key when there is no other', async () => {
      const { g } = await twoUpstreams();
      const run = async (id: string) => {
        const out: string[] = [];
        for (let i = 0; i < 4; i++) out.push(servedBy(await post(g, { ...BODY, previous_response_id: id }))!);
        return out;
      };
      const one = await run('resp_prev_one');
      const two = await run('resp_prev_two');
      assert.equal(new Set(one).size, 1, `resp_prev_one hopped: ${one.join(',')}`);
      assert.equal(new Set(two).size, 1, `resp_prev_two hopped: ${two.join(',')}`);
      assert.notEqual(one[0], two[0]);
    });

    it('a binding ends after pool.affinity.ttl without use', async () => {
      const { g } = await twoUpstreams({ affinity: { ttl: '200ms' } });
      const session = { 'session-id': 'sess-ttl' };
      const [first] = await sequence(g, 1, session);
      const key = 's:sess-ttl';
      assert.equal(g.gw.pool.state.affinity(key, Date.now()), first);
      await until(
        () => g.gw.pool.state.affinity(key, Date.now()) === undefined,
        'the binding should expire',
        2000,
      );
      // Unbound, the session is placed by round-robin again, whose next turn is the other account.
      const [next] = await sequence(g, 1, session);
      assert.notEqual(next, first);
      assert.equal(g.gw.pool.state.affinity(key, Date.now()), next, 'and it binds there');
    });

    it('pool.affinity.enabled: false spreads the same session', async () => {
      const { A, B, g } = await twoUpstreams({ affinity: { enabled: false } });
      const served = await sequence(g, 4, { 'session-id': 'sess-spread' });
      assert.equal(count(served, 'A'), 2, served.join(','));
      assert.equal(count(served, 'B'), 2, served.join(','));
      assert.equal(A.requests.length + B.requests.length, 4);
    });
  });
});
