/**
 * Per-upstream quota (issue 14): what MemoryPoolState keeps of a reported quota (bounded, whole
 * percents, in the view), and the `most-headroom` selection policy on it, unit level (a Scheduler on
 * a MemoryPoolState, no HTTP). The end-to-end checks, with a Codex backend sending the headers, are
 * in test/plugins/codex-quota.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { pino } from 'pino';
import { RequestContext } from '../../core/kernel/context.js';
import { MemoryPoolState } from '../../core/pool/pool-state.js';
import { quotaChanged, quotaUsed, type UpstreamQuota } from '../../core/pool/quota.js';
import { Scheduler } from '../../core/pool/scheduler.js';
import { Upstream } from '../../core/pool/upstream.js';

const TIMEOUTS = { connect: 10_000, firstByte: 300_000, idle: 300_000, total: 3_600_000 };
const silent = pino({ enabled: false });
const HOUR = 3600_000;

function upstream(name: string, weight = 1): Upstream {
  const base = { name, type: 'codex', models: [], maxConcurrency: 0, weight, priority: 0 };
  return new Upstream(base, { baseUrl: 'http://127.0.0.1:9/v1' }, TIMEOUTS);
}

function request(): RequestContext {
  const req = new http.IncomingMessage(new net.Socket());
  req.method = 'POST';
  req.url = '/v1/responses';
  return new RequestContext('req_test', req, new http.ServerResponse(req), silent);
}

/** A quota of a 5-hour and a weekly window, used `primary` and `secondary` percent. */
function quota(primary: number, secondary: number, resets: [number | null, number | null] = [null, null]) {
  const now = Date.now();
  return {
    windows: [
      { id: 'primary', label: '5h', usedPercent: primary, windowMinutes: 300, resetsAt: resets[0] },
      { id: 'secondary', label: 'weekly', usedPercent: secondary, windowMinutes: 10080, resetsAt: resets[1] },
    ],
    observedAt: now,
  } satisfies UpstreamQuota;
}

function headroom() {
  const state = new MemoryPoolState();
  const s = new Scheduler(state, { strategy: 'most-headroom', affinity: { enabled: false, ttl: 60_000 } });
  return { state, pick: (ups: Upstream[]) => s.select(request(), ups).name };
}

describe('upstream quota (unit)', () => {
  describe('MemoryPoolState', () => {
    it('keeps the latest quota per upstream, in whole percents, and shows it in the view', () => {
      const s = new MemoryPoolState();
      assert.equal(s.quota('A'), undefined);
      assert.equal('quota' in s.view('A', Date.now()), false, 'no quota key for one that never reported');
      s.setQuota('A', quota(12.4, 40.6));
      s.setQuota('A', quota(13.4, 40.6));
      const q = s.quota('A')!;
      assert.deepEqual(
        q.windows.map((w) => [w.id, w.label, w.usedPercent, w.windowMinutes]),
        [
          ['primary', '5h', 13, 300],
          ['secondary', 'weekly', 41, 10080],
        ],
      );
      assert.deepEqual(s.view('A', Date.now()).quota, q);
      assert.equal(s.quota('B'), undefined);
    });

    it('bounds what it keeps: windows, label length, percents; drops a report with no valid window', () => {
      const s = new MemoryPoolState();
      const many = Array.from({ length: 50 }, (_, i) => ({
        id: 'w'.repeat(1000) + i,
        label: 'x'.repeat(10_000),
        usedPercent: 1e9,
        windowMinutes: -5,
        resetsAt: Number.NaN,
      }));
      s.setQuota('A', { windows: many, observedAt: Date.now() });
      const q = s.quota('A')!;
      assert.equal(q.windows.length, 8);
      for (const w of q.windows) {
        assert.ok(w.id.length <= 32 && w.label.length <= 32);
        assert.equal(w.usedPercent, 1000);
        assert.equal(w.windowMinutes, null);
        assert.equal(w.resetsAt, null);
      }
      const before = s.quota('A');
      s.setQuota('A', {
        windows: [{ id: 'p', label: 'p', usedPercent: Number.NaN }],
        observedAt: 1,
      } as never);
      s.setQuota('A', { windows: 'nope', observedAt: 1 } as never);
      s.setQuota('A', null as never);
      assert.equal(s.quota('A'), before, 'a report with nothing valid leaves the last one');
    });

    it('quotaChanged: a whole percent, a window, or a reset that moved a minute or more', () => {
      const t = Date.now() + HOUR;
      const base = quota(10, 20, [t, t + 100 * HOUR]);
      assert.equal(quotaChanged(undefined, base), true);
      assert.equal(quotaChanged(base, quota(10, 20, [t + 5_000, t + 100 * HOUR])), false);
      assert.equal(quotaChanged(base, quota(11, 20, [t, t + 100 * HOUR])), true);
      assert.equal(quotaChanged(base, quota(10, 20, [t + 300_000, t + 100 * HOUR])), true);
      assert.equal(quotaChanged(base, { ...base, windows: base.windows.slice(0, 1) }), true);
    });

    it('quotaUsed: the most-used window; past its reset a window is empty; unknown is 0', () => {
      const now = Date.now();
      assert.equal(quotaUsed(undefined, now), 0);
      assert.equal(quotaUsed(quota(30, 70), now), 70);
      assert.equal(quotaUsed(quota(30, 70, [now + HOUR, now - 1]), now), 30);
      assert.equal(quotaUsed(quota(30, 70, [now - 1, now - 1]), now), 0);
    });
  });

  describe('most-headroom', () => {
    it('picks the account whose most-used window is the least used, request after request', () => {
      const { state, pick } = headroom();
      const ups = [upstream('A'), upstream('B'), upstream('C')];
      state.setQuota('A', quota(50, 10));
      state.setQuota('B', quota(5, 60)); // the weekly window counts: 60
      state.setQuota('C', quota(20, 30));
      assert.deepEqual([pick(ups), pick(ups), pick(ups)], ['C', 'C', 'C']);
      state.setQuota('C', quota(20, 55));
      assert.equal(pick(ups), 'A');
    });

    it('a window past its reset counts as empty', () => {
      const { state, pick } = headroom();
      const ups = [upstream('A'), upstream('B')];
      const now = Date.now();
      state.setQuota('A', quota(30, 10, [now + HOUR, now + 100 * HOUR]));
      state.setQuota('B', quota(95, 5, [now - 1000, now + 100 * HOUR]));
      assert.equal(pick(ups), 'B', 'B’s 95% window has reset: 5% used');
    });

    it('an account that never reported counts as unused, so it is tried first', () => {
      const { state, pick } = headroom();
      const ups = [upstream('A'), upstream('B'), upstream('C')];
      state.setQuota('A', quota(1, 1));
      state.setQuota('B', quota(2, 0));
      assert.equal(pick(ups), 'C');
    });

    it('ties: the fewest in flight per weight, then config order', () => {
      const { state, pick } = headroom();
      const ups = [upstream('A'), upstream('B', 4), upstream('C')];
      for (const u of ['A', 'B', 'C']) state.setQuota(u, quota(40, 40));
      assert.equal(pick(ups), 'A', 'all equal: config order');
      state.acquire('A', 0);
      state.acquire('B', 0);
      state.acquire('B', 0);
      // A: 1/1, B: 2/4, C: 0/1.
      assert.equal(pick(ups), 'C');
      state.acquire('C', 0);
      assert.equal(pick(ups), 'B', 'B: 0.5 per weight, A and C: 1');
      state.setQuota('A', quota(39, 0));
      assert.equal(pick(ups), 'A', 'headroom first, load only on a tie');
    });

    it('a store without quota methods (an embedder’s): every account is unreported, load decides', () => {
      const inner = new MemoryPoolState();
      const bare = {
        view: inner.view.bind(inner),
        inFlight: inner.inFlight.bind(inner),
        acquire: inner.acquire.bind(inner),
        release: inner.release.bind(inner),
        cooldown: inner.cooldown.bind(inner),
        cool: inner.cool.bind(inner),
        clearCooldown: inner.clearCooldown.bind(inner),
        clearTransient: inner.clearTransient.bind(inner),
        affinity: inner.affinity.bind(inner),
        bind: inner.bind.bind(inner),
        unbind: inner.unbind.bind(inner),
        unbindUpstream: inner.unbindUpstream.bind(inner),
        disable: inner.disable.bind(inner),
        enable: inner.enable.bind(inner),
        disabled: inner.disabled.bind(inner),
      };
      const s = new Scheduler(bare, { strategy: 'most-headroom', affinity: { enabled: false, ttl: 1 } });
      const ups = [upstream('A'), upstream('B')];
      inner.acquire('A', 0);
      assert.equal(s.select(request(), ups).name, 'B');
    });
  });
});
