/**
 * Unit tests of MemoryPoolState beside the black-box pool suites (pool-cooldowns, pool-leases,
 * state-bounds): cooldown precedence and replacement, clearTransient, account-wide versus per-model
 * cooldowns, binding TTLs and cap, leases, and view(). Times are passed in, so nothing waits.
 */
import assert from 'node:assert/strict';
import { MemoryPoolState } from '../../core/pool/pool-state.js';

/** A fixed "now" well ahead of Date.now(), so the store's own sweeps (by Date.now()) drop nothing. */
const T = Date.now() + 3_600_000;

describe('MemoryPoolState (unit)', () => {
  describe('cooldowns', () => {
    it('a hard (rate_limit) cooldown outranks a soft one, whichever ends later', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 60_000, 'upstream 503', 'transient');
      s.cool('A', 'm1', T + 1_000, 'rate limited', 'rate_limit');
      assert.equal(s.cooldown('A', 'm1', T)?.kind, 'rate_limit');
      const t = new MemoryPoolState();
      t.cool('A', undefined, T + 1_000, 'rate limited', 'rate_limit');
      t.cool('A', 'm1', T + 60_000, 'upstream 503', 'transient');
      assert.equal(t.cooldown('A', 'm1', T)?.kind, 'rate_limit');
    });

    it('between cooldowns of one kind, the later reset wins', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 1_000, 'account', 'rate_limit');
      s.cool('A', 'm1', T + 5_000, 'model', 'rate_limit');
      s.cool('A', 'm2', T + 500, 'model 2', 'rate_limit');
      assert.equal(s.cooldown('A', 'm1', T)?.reason, 'model');
      assert.equal(s.cooldown('A', 'm2', T)?.reason, 'account');
    });

    it('cool() replaces an entry that ends sooner, or a soft one with a hard one; never shortens', () => {
      const s = new MemoryPoolState();
      s.cool('A', 'm', T + 5_000, 'first', 'rate_limit');
      s.cool('A', 'm', T + 1_000, 'sooner', 'rate_limit');
      assert.deepEqual(s.cooldown('A', 'm', T), {
        until: T + 5_000,
        reason: 'first',
        kind: 'rate_limit',
        label: 'm',
      });
      s.cool('A', 'm', T + 9_000, 'later', 'rate_limit');
      assert.equal(s.cooldown('A', 'm', T)?.reason, 'later');
      s.cool('B', undefined, T + 9_000, 'soft', 'transient');
      s.cool('B', undefined, T + 1_000, 'hard', 'rate_limit');
      assert.deepEqual(s.cooldown('B', undefined, T), {
        until: T + 1_000,
        reason: 'hard',
        kind: 'rate_limit',
      });
      s.cool('B', undefined, T + 500, 'soft again', 'transient');
      assert.equal(s.cooldown('B', undefined, T)?.reason, 'hard');
    });

    it('an account-wide cooldown covers every model; a per-model one only its model', () => {
      const s = new MemoryPoolState();
      s.cool('A', 'm1', T + 1_000, 'm1 limited', 'rate_limit');
      assert.equal(s.cooldown('A', 'm1', T)?.reason, 'm1 limited');
      assert.equal(s.cooldown('A', 'm2', T), undefined);
      assert.equal(
        s.cooldown('A', undefined, T),
        undefined,
        'a request without a model sees the account only',
      );
      assert.equal(s.cooldown('B', 'm1', T), undefined, 'other upstreams are untouched');
      s.cool('A', undefined, T + 1_000, 'account limited', 'rate_limit');
      assert.equal(s.cooldown('A', 'm2', T)?.reason, 'account limited');
      assert.equal(s.cooldown('A', undefined, T)?.reason, 'account limited');
    });

    it('no model name stands for the account, however it is spelled', () => {
      const s = new MemoryPoolState();
      for (const m of ['', 'undefined', '*', 'null']) s.cool('A', m, T + 1_000, `model ${m}`, 'rate_limit');
      assert.equal(s.cooldown('A', undefined, T), undefined);
      assert.equal(s.cooldown('A', 'gpt-5', T), undefined);
    });

    it('ends at `until`: the cooldown is gone from that instant', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 1_000, 'account', 'transient');
      s.cool('A', 'm1', T + 2_000, 'model', 'transient');
      assert.equal(s.cooldown('A', 'm2', T + 999)?.reason, 'account');
      assert.equal(s.cooldown('A', 'm2', T + 1_000), undefined);
      assert.equal(s.cooldown('A', 'm1', T + 1_999)?.reason, 'model');
      assert.equal(s.cooldown('A', 'm1', T + 2_000), undefined);
    });

    it('clearTransient drops the soft cooldowns of the model and the account, and keeps rate limits', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 1_000, 'account 503', 'transient');
      s.cool('A', 'm1', T + 1_000, 'm1 503', 'transient');
      s.cool('A', 'm2', T + 1_000, 'm2 503', 'transient');
      s.cool('A', 'm3', T + 1_000, 'm3 429', 'rate_limit');
      s.clearTransient('A', 'm1');
      assert.equal(s.cooldown('A', 'm1', T), undefined);
      assert.equal(s.cooldown('A', 'm2', T)?.reason, 'm2 503', 'another model keeps its own');
      s.clearTransient('A', 'm3');
      assert.equal(s.cooldown('A', 'm3', T)?.reason, 'm3 429');
      s.cool('A', undefined, T + 1_000, 'account 429', 'rate_limit');
      s.clearTransient('A', undefined);
      assert.equal(s.cooldown('A', undefined, T)?.reason, 'account 429');
    });

    it('clearCooldown clears exactly the model or the account it names', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 1_000, 'account', 'rate_limit');
      s.cool('A', 'm1', T + 5_000, 'model', 'rate_limit');
      s.clearCooldown('A', 'm1');
      assert.equal(s.cooldown('A', 'm1', T)?.reason, 'account');
      s.clearCooldown('A', undefined);
      assert.equal(s.cooldown('A', 'm1', T), undefined);
    });

    it('a long model name is kept by digest: the same name finds its cooldown, another does not', () => {
      const s = new MemoryPoolState();
      const long = 'm'.repeat(10_000);
      s.cool('A', long, T + 1_000, 'long', 'rate_limit');
      assert.equal(s.cooldown('A', long, T)?.reason, 'long');
      assert.equal(s.cooldown('A', long + 'x', T), undefined);
      assert.ok(s.stats().cooldownKeyChars < 200, `${s.stats().cooldownKeyChars} key chars`);
    });

    it('a full per-model table evicts the soft cooldown that ends soonest, rate limits last', () => {
      const s = new MemoryPoolState({ maxModelCooldowns: 3 });
      s.cool('A', 'hard-soon', T + 1_000, 'r', 'rate_limit');
      s.cool('A', 'soft-late', T + 9_000, 's', 'transient');
      s.cool('A', 'soft-soon', T + 2_000, 's', 'transient');
      s.cool('A', 'new', T + 5_000, 'n', 'rate_limit');
      assert.equal(s.stats().cooldowns, 3);
      assert.equal(s.cooldown('A', 'soft-soon', T), undefined);
      for (const m of ['hard-soon', 'soft-late', 'new']) assert.ok(s.cooldown('A', m, T), m);
    });
  });

  describe('session bindings', () => {
    it('live until their TTL ends, then are gone (and dropped)', () => {
      const s = new MemoryPoolState();
      s.bind('k', 'A', T + 1_000);
      assert.equal(s.affinity('k', T + 999), 'A');
      assert.equal(s.affinity('k', T + 1_000), undefined);
      assert.equal(s.stats().bindings, 0);
    });

    it('a bind renews the TTL and may move the session', () => {
      const s = new MemoryPoolState();
      s.bind('k', 'A', T + 1_000);
      s.bind('k', 'B', T + 5_000);
      assert.equal(s.affinity('k', T + 2_000), 'B');
      assert.equal(s.stats().bindings, 1);
    });

    it('unbind drops one session; unbindUpstream every session bound to that upstream', () => {
      const s = new MemoryPoolState();
      s.bind('k1', 'A', T + 1_000);
      s.bind('k2', 'A', T + 1_000);
      s.bind('k3', 'B', T + 1_000);
      s.unbind('k1');
      assert.equal(s.affinity('k1', T), undefined);
      s.unbindUpstream('A');
      assert.equal(s.affinity('k2', T), undefined);
      assert.equal(s.affinity('k3', T), 'B');
    });

    it('are capped: past maxBindings the least recently used goes', () => {
      const s = new MemoryPoolState({ maxBindings: 3 });
      for (const k of ['k1', 'k2', 'k3']) s.bind(k, 'A', T + 1_000);
      s.bind('k1', 'A', T + 1_000);
      s.bind('k4', 'A', T + 1_000);
      assert.equal(s.stats().bindings, 3);
      assert.equal(s.affinity('k2', T), undefined, 'k2 was used least recently');
      for (const k of ['k1', 'k3', 'k4']) assert.equal(s.affinity(k, T), 'A', k);
    });

    it('keep a long session key as a bounded digest', () => {
      const s = new MemoryPoolState();
      const long = 's'.repeat(100_000);
      s.bind(long, 'A', T + 1_000);
      assert.equal(s.affinity(long, T), 'A');
      assert.ok(s.stats().bindingKeyChars < 200, `${s.stats().bindingKeyChars} key chars`);
    });
  });

  describe('leases and disabling', () => {
    it('counts leases per upstream and refuses a release with none held', () => {
      const s = new MemoryPoolState();
      s.acquire('A', 0);
      s.acquire('A', 0);
      s.acquire('B', 0);
      assert.equal(s.inFlight('A'), 2);
      s.release('A');
      s.release('A');
      assert.equal(s.inFlight('A'), 0);
      assert.equal(s.inFlight('B'), 1);
      assert.throws(() => s.release('A'), /released twice/);
    });

    it('disable keeps a reason until enable', () => {
      const s = new MemoryPoolState();
      s.disable('A', 'no api key');
      assert.equal(s.disabled('A'), 'no api key');
      assert.equal(s.disabled('B'), undefined);
      s.enable('A');
      assert.equal(s.disabled('A'), undefined);
    });
  });

  describe('view()', () => {
    it('shows in-flight, the disabled reason and the cooldowns in force (account as model null)', () => {
      const s = new MemoryPoolState();
      s.acquire('A', 0);
      s.disable('A', 'paused');
      s.cool('A', undefined, T + 1_000, 'account 429', 'rate_limit');
      s.cool('A', 'm1', T + 2_000, 'm1 503', 'transient');
      s.cool('A', 'm2', T + 500, 'm2 503', 'transient');
      assert.deepEqual(s.view('A', T + 600), {
        inFlight: 1,
        disabled: 'paused',
        cooldowns: [
          { model: null, until: T + 1_000, reason: 'account 429', kind: 'rate_limit' },
          { model: 'm1', until: T + 2_000, reason: 'm1 503', kind: 'transient' },
        ],
      });
      assert.deepEqual(s.view('B', T), { inFlight: 0, disabled: undefined, cooldowns: [] });
    });

    it('drops what has ended, and clips a long model label and reason', () => {
      const s = new MemoryPoolState();
      s.cool('A', undefined, T + 1_000, 'account', 'transient');
      s.cool('A', 'x'.repeat(5_000), T + 5_000, 'y'.repeat(5_000), 'rate_limit');
      const v = s.view('A', T + 1_000);
      assert.equal(v.cooldowns.length, 1);
      const [c] = v.cooldowns;
      assert.equal(c!.model, `${'x'.repeat(64)}…(${5_000 - 64} more characters)`);
      assert.equal(c!.reason, `${'y'.repeat(256)}…(${5_000 - 256} more characters)`);
      assert.equal(s.view('A', T + 5_000).cooldowns.length, 0);
      assert.equal(s.stats().cooldowns, 0, 'the view swept the expired entry');
    });
  });
});
