/**
 * Unit tests of the Scheduler beside the black-box pool suites (pool-scheduling.test.ts): strategies,
 * priority tiers and the affinity keep/move rules, on a MemoryPoolState and Upstream objects, no HTTP.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { pino } from 'pino';
import { RequestContext } from '../../core/kernel/context.js';
import { MemoryPoolState } from '../../core/pool/pool-state.js';
import { Scheduler, type SchedulerOptions } from '../../core/pool/scheduler.js';

/** The built-in selection policies. */
type StrategyName = 'round-robin' | 'least-in-flight' | 'fill-first';
import { MAX_STATE_KEY_CHARS } from '../../core/pool/state-key.js';
import { Upstream } from '../../core/pool/upstream.js';

const TIMEOUTS = { connect: 10_000, firstByte: 300_000, idle: 300_000, total: 3_600_000 };
const TTL = 60_000;
const silent = pino({ enabled: false });

function upstream(name: string, opts: { weight?: number; priority?: number } = {}): Upstream {
  const base = { name, type: 'openai', models: [], maxConcurrency: 0, weight: 1, priority: 0, ...opts };
  return new Upstream(base, { baseUrl: 'http://127.0.0.1:9/v1' }, TIMEOUTS);
}

/** A request as the scheduler sees it: headers, the parsed body and its model. No socket is opened. */
function request(headers: Record<string, string> = {}, json?: Record<string, unknown>): RequestContext {
  const req = new http.IncomingMessage(new net.Socket());
  req.method = 'POST';
  req.url = '/v1/responses';
  req.headers = headers;
  const ctx = new RequestContext('req_test', req, new http.ServerResponse(req), silent);
  ctx.json = json;
  ctx.model = typeof json?.model === 'string' ? json.model : undefined;
  return ctx;
}

function scheduler(
  strategy: StrategyName,
  affinity: Partial<SchedulerOptions['affinity']> = {},
): { s: Scheduler; state: MemoryPoolState } {
  const state = new MemoryPoolState();
  return { s: new Scheduler(state, { strategy, affinity: { enabled: true, ttl: TTL, ...affinity } }), state };
}

/** Names picked by `n` selections of a request without a session. */
function picks(s: Scheduler, candidates: Upstream[], n: number): string[] {
  return Array.from({ length: n }, () => s.select(request(), candidates).name);
}

describe('Scheduler (unit)', () => {
  describe('round-robin', () => {
    it('spreads picks by weight, smoothly: 5:1:1 gives A A B A C A A, cycle after cycle', () => {
      const { s } = scheduler('round-robin');
      const ups = [upstream('A', { weight: 5 }), upstream('B'), upstream('C')];
      const cycle = ['A', 'A', 'B', 'A', 'C', 'A', 'A'];
      assert.deepEqual(picks(s, ups, 21), [...cycle, ...cycle, ...cycle]);
    });

    it('alternates between equal weights, starting with the first in config order', () => {
      const { s } = scheduler('round-robin');
      assert.deepEqual(picks(s, [upstream('A'), upstream('B')], 4), ['A', 'B', 'A', 'B']);
    });

    it('a weight-3:1 pair never serves the light one twice in a row', () => {
      const { s } = scheduler('round-robin');
      const got = picks(s, [upstream('A', { weight: 3 }), upstream('B')], 40);
      assert.equal(got.filter((n) => n === 'A').length, 30);
      assert.ok(!got.join('').includes('BB'), got.join(''));
    });
  });

  describe('least-in-flight', () => {
    it('picks the upstream with the fewest requests in flight', () => {
      const { s, state } = scheduler('least-in-flight');
      const ups = [upstream('A'), upstream('B'), upstream('C')];
      state.acquire('A', 0);
      state.acquire('A', 0);
      state.acquire('B', 0);
      assert.equal(s.select(request(), ups).name, 'C');
      state.acquire('C', 0);
      state.acquire('C', 0);
      assert.equal(s.select(request(), ups).name, 'B');
    });

    it('counts in-flight per unit of weight, and breaks ties by config order', () => {
      const { s, state } = scheduler('least-in-flight');
      const ups = [upstream('A', { weight: 4 }), upstream('B')];
      assert.equal(s.select(request(), ups).name, 'A', 'tie at 0: the first');
      state.acquire('A', 0);
      state.acquire('A', 0);
      state.acquire('B', 0);
      // A: 2/4 = 0.5, B: 1/1 = 1.
      assert.equal(s.select(request(), ups).name, 'A');
      state.acquire('A', 0);
      state.acquire('A', 0);
      state.acquire('A', 0);
      // A: 5/4 > B: 1.
      assert.equal(s.select(request(), ups).name, 'B');
    });
  });

  describe('fill-first', () => {
    it('takes the first candidate however loaded, and the next once the first is not a candidate', () => {
      const { s, state } = scheduler('fill-first');
      const [A, B, C] = [upstream('A'), upstream('B'), upstream('C')];
      for (let i = 0; i < 5; i++) state.acquire('A', 0);
      assert.deepEqual(picks(s, [A, B, C], 3), ['A', 'A', 'A']);
      // The pool leaves a full upstream out of the candidates.
      assert.deepEqual(picks(s, [B, C], 2), ['B', 'B']);
    });
  });

  describe('priority tiers', () => {
    for (const strategy of ['round-robin', 'least-in-flight', 'fill-first'] as const)
      it(`${strategy}: only the best (lowest) priority tier is served while it has a candidate`, () => {
        const { s, state } = scheduler(strategy);
        const backup = upstream('backup', { priority: 1, weight: 100 });
        const [A, B] = [upstream('A', { priority: 0 }), upstream('B', { priority: 0 })];
        state.acquire('A', 0);
        state.acquire('B', 0);
        const got = picks(s, [backup, A, B], 6);
        assert.ok(!got.includes('backup'), got.join(' '));
        assert.deepEqual(picks(s, [backup], 2), ['backup', 'backup']);
      });

    it('a lower tier takes over when the best one has no candidate left, by its own strategy', () => {
      const { s } = scheduler('round-robin');
      const ups = [
        upstream('A', { priority: 0 }),
        upstream('B', { priority: 2 }),
        upstream('C', { priority: 2 }),
      ];
      assert.deepEqual(picks(s, ups, 2), ['A', 'A']);
      assert.deepEqual(picks(s, ups.slice(1), 4), ['B', 'C', 'B', 'C']);
    });
  });

  describe('session affinity', () => {
    const session = { 'session-id': 'sess-1' };

    it('binds a new session to the upstream the strategy picks, and keeps it there', () => {
      const { s, state } = scheduler('round-robin');
      const ups = [upstream('A'), upstream('B')];
      assert.equal(s.select(request(session), ups).name, 'A');
      // Round-robin alone would now pick B.
      for (let i = 0; i < 4; i++) assert.equal(s.select(request(session), ups).name, 'A');
      assert.equal(state.affinity(Scheduler.sessionKey(request(session))!, Date.now()), 'A');
      assert.equal(s.select(request(), ups).name, 'B', 'requests without a session are not bound');
    });

    it('renews the binding on every hit', () => {
      const { s, state } = scheduler('round-robin', { ttl: 1000 });
      const ups = [upstream('A'), upstream('B')];
      const key = Scheduler.sessionKey(request(session))!;
      s.select(request(session), ups);
      const later = Date.now() + 900;
      state.bind(key, 'A', later);
      s.select(request(session), ups);
      assert.equal(state.affinity(key, later + 50), 'A', 'the hit pushed the binding past its old end');
    });

    it('a bound upstream that is only busy (not a candidate) serves elsewhere and keeps the session', () => {
      const { s, state } = scheduler('round-robin');
      const [A, B] = [upstream('A'), upstream('B')];
      const key = Scheduler.sessionKey(request(session))!;
      assert.equal(s.select(request(session), [A, B]).name, 'A');
      assert.equal(s.select(request(session), [B]).name, 'B');
      assert.equal(state.affinity(key, Date.now()), 'A');
      assert.equal(s.select(request(session), [A, B]).name, 'A', 'back on A once it is free');
    });

    it('a bound upstream that is cooling moves the session for good', () => {
      const { s, state } = scheduler('round-robin');
      const [A, B] = [upstream('A'), upstream('B')];
      const key = Scheduler.sessionKey(request(session))!;
      assert.equal(s.select(request(session), [A, B]).name, 'A');
      state.cool('A', undefined, Date.now() + 60_000, 'rate limited', 'rate_limit');
      assert.equal(s.select(request(session), [B]).name, 'B');
      assert.equal(state.affinity(key, Date.now()), 'B');
      state.clearCooldown('A', undefined);
      assert.equal(s.select(request(session), [A, B]).name, 'B', 'stays on B after A recovers');
    });

    it('a cooldown for the request model only also moves the session; one for another model does not', () => {
      const { s, state } = scheduler('round-robin');
      const [A, B] = [upstream('A'), upstream('B')];
      const body = { model: 'm1', prompt_cache_key: 'pck-1' };
      const key = Scheduler.sessionKey(request({}, body))!;
      assert.equal(s.select(request({}, body), [A, B]).name, 'A');
      state.cool('A', 'm2', Date.now() + 60_000, 'm2 limited', 'rate_limit');
      assert.equal(s.select(request({}, body), [B]).name, 'B');
      assert.equal(state.affinity(key, Date.now()), 'A', 'a cooldown of m2 does not move an m1 session');
      state.cool('A', 'm1', Date.now() + 60_000, 'm1 limited', 'transient');
      assert.equal(s.select(request({}, body), [B]).name, 'B');
      assert.equal(state.affinity(key, Date.now()), 'B');
    });

    it('a bound upstream that is disabled moves the session for good', () => {
      const { s, state } = scheduler('round-robin');
      const [A, B] = [upstream('A'), upstream('B')];
      const key = Scheduler.sessionKey(request(session))!;
      s.select(request(session), [A, B]);
      state.disable('A', 'no api key');
      assert.equal(s.select(request(session), [B]).name, 'B');
      assert.equal(state.affinity(key, Date.now()), 'B');
    });

    it('an expired binding is gone: the strategy picks again', () => {
      const { s, state } = scheduler('round-robin', { ttl: 0 });
      const ups = [upstream('A'), upstream('B')];
      assert.deepEqual(
        Array.from({ length: 4 }, () => s.select(request(session), ups).name),
        ['A', 'B', 'A', 'B'],
      );
      assert.ok(state.stats().bindings <= 1);
    });

    it('when turned off, binds nothing and follows the strategy', () => {
      const { s, state } = scheduler('round-robin', { enabled: false });
      const ups = [upstream('A'), upstream('B')];
      assert.deepEqual(
        Array.from({ length: 4 }, () => s.select(request(session), ups).name),
        ['A', 'B', 'A', 'B'],
      );
      assert.equal(state.stats().bindings, 0);
    });
  });

  describe('sessionKey', () => {
    it('takes the session-id header, then prompt_cache_key, then previous_response_id', () => {
      const all = { prompt_cache_key: 'p1', previous_response_id: 'resp_1' };
      assert.equal(Scheduler.sessionKey(request({ 'session-id': 'h1' }, all)), 's:h1');
      assert.equal(Scheduler.sessionKey(request({ session_id: 'h2' }, all)), 's:h2');
      assert.equal(Scheduler.sessionKey(request({}, all)), 'p:p1');
      assert.equal(Scheduler.sessionKey(request({}, { previous_response_id: 'resp_1' })), 'r:resp_1');
      assert.equal(Scheduler.sessionKey(request({ 'session-id': '' }, { prompt_cache_key: '' })), undefined);
      assert.equal(Scheduler.sessionKey(request()), undefined);
    });

    it('bounds a long key to a fixed-size digest, the same for the same key', () => {
      const long = 'x'.repeat(100_000);
      const a = Scheduler.sessionKey(request({ 'session-id': long }))!;
      assert.ok(a.length <= MAX_STATE_KEY_CHARS, `${a.length} chars`);
      assert.equal(Scheduler.sessionKey(request({ 'session-id': long })), a);
      assert.notEqual(Scheduler.sessionKey(request({ 'session-id': long + 'y' })), a);
    });
  });
});
