/**
 * Gauges computed when scraped, never on a request's path: requests in flight, the slot queue,
 * slots and state per upstream. The pool is read at each scrape (its upstream list may be replaced
 * on a config reload), so a removed upstream's series go with it.
 */
import { Gauge, type Registry } from 'prom-client';
import type { UpstreamPool } from '../pool/pool.js';
import { upstreamCondition } from './readiness.js';

export interface GaugeSource {
  /** The pool, or undefined before boot built it. */
  pool(): UpstreamPool | undefined;
  /** Requests in flight in this process. */
  inflight(): number;
}

const STATES = ['ok', 'cooling', 'disabled'] as const;

export function registerPoolGauges(registry: Registry, source: GaugeSource): void {
  const registers = [registry];
  new Gauge({
    name: 'tapgate_requests_in_flight',
    help: 'Requests being served (queued ones included)',
    registers,
    collect() {
      this.set(source.inflight());
    },
  });
  new Gauge({
    name: 'tapgate_queue_length',
    help: 'Requests waiting for an upstream slot',
    registers,
    collect() {
      this.set(source.pool()?.queue.length ?? 0);
    },
  });
  new Gauge({
    name: 'tapgate_upstream_slots_in_use',
    help: 'Concurrency slots this process holds on each upstream',
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset();
      const pool = source.pool();
      if (pool === undefined) return;
      for (const u of pool.upstreams) this.set({ upstream: u.name }, pool.state.inFlight(u.name));
    },
  });
  new Gauge({
    name: 'tapgate_upstream_state',
    help: 'Upstream state: 1 for the current one of ok, cooling (a cooldown in force, any model), disabled; 0 for the others',
    labelNames: ['upstream', 'state'],
    // Across workers: 1 where any worker sees the state (each keeps its own with state.store: memory).
    aggregator: 'max',
    registers,
    collect() {
      this.reset();
      const pool = source.pool();
      if (pool === undefined) return;
      const now = Date.now();
      for (const u of pool.upstreams) {
        const current = upstreamCondition(pool.state, u.name, now);
        for (const state of STATES) this.set({ upstream: u.name, state }, state === current ? 1 : 0);
      }
    },
  });
}
