/**
 * Issue 13: the ClusterStore plugins coordinate through (`PluginContext.cluster`). The same contract
 * holds in memory and on a real Redis; on Redis it holds across processes (two stores here, each with
 * its own connections), and a Redis that is gone is a SharedStoreUnavailableError, never a hang.
 */
import assert from 'node:assert/strict';
import { parseConfig } from '../../core/config/config.js';
import { createLogger } from '../../core/observe/logger.js';
import { Secrets } from '../../core/observe/secrets.js';
import { SharedStoreUnavailableError, type ClusterStore } from '../../core/state/cluster-store.js';
import { createStateStores, type StateStores } from '../../core/state/state-stores.js';
import { LogCapture } from '../helpers/gateway.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

function stores(yaml: string): StateStores {
  const { config } = parseConfig(yaml, 'config.yaml', {});
  const secrets = new Secrets(config);
  return createStateStores(config, createLogger('info', new LogCapture(), secrets), secrets);
}

describe('ClusterStore', () => {
  let redis: TestRedis;
  const open: StateStores[] = [];
  before(async () => (redis = await startRedis()));
  after(() => redis.close());
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  async function make(kind: 'memory' | 'redis'): Promise<ClusterStore> {
    const s = stores(kind === 'memory' ? '' : `state: { store: redis, url: '${redis.url}' }`);
    open.push(s);
    await s.start();
    return s.cluster;
  }

  for (const kind of ['memory', 'redis'] as const) {
    describe(kind, () => {
      it('get, set with a TTL, and a claim only one caller wins', async () => {
        const c = await make(kind);
        assert.equal(c.shared, kind === 'redis');
        assert.equal(await c.get(`k-${kind}`), undefined);
        await c.set(`k-${kind}`, 'v1');
        assert.equal(await c.get(`k-${kind}`), 'v1');
        await c.set(`short-${kind}`, 'v', 100);
        assert.equal(await c.get(`short-${kind}`), 'v');
        const end = performance.now() + 3000;
        while ((await c.get(`short-${kind}`)) !== undefined) {
          assert.ok(performance.now() < end, 'the value outlived its TTL');
          await new Promise((r) => setTimeout(r, 20));
        }
        const claims = await Promise.all(
          Array.from({ length: 10 }, (_, i) => c.claim(`claim-${kind}`, String(i), 10_000)),
        );
        assert.equal(claims.filter(Boolean).length, 1);
      });

      it('a lock has one holder, a growing fence, and a fenced write that fails once the lock is lost', async () => {
        const c = await make(kind);
        const first = await c.lock(`L-${kind}`, 150);
        assert.ok(first !== undefined);
        assert.equal(await c.lock(`L-${kind}`, 150), undefined, 'held');
        assert.equal(await first.setIfHeld(`fenced-${kind}`, 'one'), true);
        // It expires (a holder that stalled): another takes it, and the stale holder's write is refused.
        let second;
        const end = Date.now() + 3000;
        while ((second = await c.lock(`L-${kind}`, 5000)) === undefined && Date.now() < end)
          await new Promise((r) => setTimeout(r, 20));
        assert.ok(second !== undefined, 'the lock expired');
        assert.ok(second.fence > first.fence);
        assert.equal(await first.setIfHeld(`fenced-${kind}`, 'stale'), false);
        assert.equal(await c.get(`fenced-${kind}`), 'one');
        await first.release(); // not its lock any more: no effect
        assert.equal(await c.lock(`L-${kind}`, 5000), undefined);
        await second.release();
        assert.ok((await c.lock(`L-${kind}`, 5000)) !== undefined);
      });
    });
  }

  it('on Redis: two processes’ stores share values, locks and channels', async () => {
    const a = await make('redis');
    const b = await make('redis');
    await a.set('shared', 'from-a');
    assert.equal(await b.get('shared'), 'from-a');
    const lock = await a.lock('both', 10_000);
    assert.ok(lock !== undefined);
    assert.equal(await b.lock('both', 10_000), undefined);
    const heard: string[] = [];
    const off = b.subscribe('news', (m) => heard.push(m));
    // The subscription is confirmed asynchronously: publish until it is heard.
    for (let i = 0; heard.length === 0 && i < 100; i++) {
      await a.publish('news', 'hello');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(heard[0], 'hello');
    off();
    await lock.release();
  });

  it('on Redis: with Redis gone, calls reject with SharedStoreUnavailableError at once', async () => {
    const own = await startRedis();
    try {
      const s = stores(`state: { store: redis, url: '${own.url}', timeout: 200ms }`);
      open.push(s);
      await s.start();
      await own.kill();
      const started = performance.now();
      for (const call of [
        () => s.cluster.get('x'),
        () => s.cluster.lock('x', 1000),
        () => s.cluster.publish('x', 'y'),
      ])
        await assert.rejects(call(), SharedStoreUnavailableError);
      assert.ok(performance.now() - started < 2000);
    } finally {
      await own.close();
    }
  });
});
