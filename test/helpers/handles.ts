/**
 * Leak checks. On the process's open handles: `snapshotHandles` counts what keeps the event loop
 * alive (`process.getActiveResourcesInfo()`: TCPSocketWrap, TCPServerWrap, Timeout, …) by type;
 * `expectNoLeaks` waits, bounded and by polling, until no type is above a baseline taken before
 * the case, and fails with the difference when one stays above it.
 *
 * Take the baseline with `handleBaseline()` and check it inside the same test body, so mocha's own
 * timeout timer is in both (mocha arms it only after an async test's synchronous start). Unref'd
 * timers and sockets do not keep the loop alive, so they are not counted. And on a gateway's own
 * books: `expectGatewayIdle` waits until no request, lease or queued wait is left.
 */
import type { Gateway } from '../../core/gateway.js';

export type HandleCounts = Record<string, number>;

export function snapshotHandles(): HandleCounts {
  const counts: HandleCounts = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** The counts once the test's synchronous start is over (see above). */
export async function handleBaseline(): Promise<HandleCounts> {
  await pause(0);
  return snapshotHandles();
}

/** Each type above its baseline, as `Type: base → now`; empty when nothing leaked. */
export function handlesAbove(base: HandleCounts, now: HandleCounts): string[] {
  const out: string[] = [];
  for (const [type, n] of Object.entries(now)) {
    const before = base[type] ?? 0;
    if (n > before) out.push(`${type}: ${before} → ${n}`);
  }
  return out;
}

/** Waits `ms`, then returns from an immediate: a timer still counts itself while it runs. */
async function pause(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  await new Promise((r) => setImmediate(r));
}

/**
 * Resolves once no handle type is above `base`; rejects after `ms` with what stayed open. Each count
 * runs after its poll timer is done, so the check never counts itself.
 */
export async function expectNoLeaks(base: HandleCounts, what = 'case', ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    const above = handlesAbove(base, snapshotHandles());
    if (above.length === 0) return;
    if (performance.now() > end)
      throw new Error(`${what}: handles still open after ${ms}ms (${above.join(', ')})`);
    await pause(10);
  }
}

/** Waits (bounded) until the gateway has nothing in flight, no upstream lease and no queued wait. */
export async function expectGatewayIdle(gw: Gateway, ms = 2000): Promise<void> {
  const pool = gw.pool;
  const idle = () =>
    gw.inflight === 0 &&
    pool.queue.length === 0 &&
    pool.upstreams.every((u) => pool.state.inFlight(u.name) === 0);
  const end = performance.now() + ms;
  while (!idle()) {
    if (performance.now() > end) {
      const leases = pool.upstreams.map((u) => `${u.name}=${pool.state.inFlight(u.name)}`).join(' ');
      throw new Error(
        `gateway not idle after ${ms}ms: in flight ${gw.inflight}, leases ${leases}, queued ${pool.queue.length}`,
      );
    }
    await pause(5);
  }
}
