/** The soak's verdict: each target with PASS or FAIL and its figure, and the printed report. */
import { FAULTS } from './plan.js';
import { total } from './probe.js';
import { mb, type SoakReport } from './run.js';

/** Largest RSS growth (after a GC) from the warm start to the end. */
export const MAX_RSS_GROWTH = 0.1;

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
const list = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');

export function growth(r: SoakReport, key: 'rss' | 'heapUsed'): number {
  return r.memory.end[key] / r.memory.start[key] - 1;
}

export function checks(r: SoakReport, maxRssGrowth = MAX_RSS_GROWTH): Check[] {
  const l = r.leftovers;
  const bad = sum(r.bad);
  const unexpected = sum(r.unexpected);
  const missing = FAULTS.filter((f) => (r.injected[f] ?? 0) === 0);
  const leaked = total(r.handles.leaked);
  const rss = growth(r, 'rss');
  return [
    {
      name: 'every request ended with a terminal answer or a deliberate client abort',
      ok: bad === 0,
      detail: bad === 0 ? 'yes' : `${bad} did not: ${list(r.bad)}`,
    },
    {
      name: 'each answer is the one its fault calls for',
      ok: unexpected === 0,
      detail: unexpected === 0 ? 'yes' : `${unexpected} differ: ${list(r.unexpected)}`,
    },
    {
      name: 'every fault kind was injected',
      ok: missing.length === 0,
      detail: missing.length === 0 ? list(r.injected) : `never injected: ${missing.join(', ')}`,
    },
    {
      name: `RSS growth ≤ ${maxRssGrowth * 100} %`,
      ok: rss <= maxRssGrowth,
      detail: `${mb(r.memory.start.rss)} → ${mb(r.memory.end.rss)} MB (${pct(rss)})`,
    },
    {
      name: 'in flight 0, slots 0, queue 0 once the load stops',
      ok: l.inflight === 0 && l.slots === 0 && l.queued === 0,
      detail: `in flight ${l.inflight}, slots ${l.slots}, queue ${l.queued}`,
    },
    {
      name: 'no connection or upstream request left open',
      ok:
        l.clientConnections === 0 &&
        l.upstreamSocketsInUse === 0 &&
        l.upstreamOpen === 0 &&
        l.uncancelled === 0 &&
        l.rendezvous === 0,
      detail: `client connections ${l.clientConnections}, upstream sockets in use ${l.upstreamSocketsInUse}, upstream responses open ${l.upstreamOpen}, never cancelled ${l.uncancelled}, unmatched ${l.rendezvous}`,
    },
    {
      name: 'zero leaked handles after close',
      ok: leaked === 0,
      detail: leaked === 0 ? '0' : `${leaked}: ${list(r.handles.leaked)}`,
    },
    {
      name: 'no secret in any answer or log line',
      ok: r.secretLeaks === 0,
      detail: r.secretLeaks === 0 ? '0' : `${r.secretLeaks} outputs held a secret`,
    },
  ];
}

/** The gateway's slots in all: accounts × each one's maxConcurrency (see run.ts). */
function slotsTotal(r: SoakReport): number {
  const o = r.options;
  return o.accounts * Math.max(1, Math.ceil((o.concurrency * 0.8) / o.accounts));
}

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
}

export function render(r: SoakReport, cs: Check[]): string {
  const o = r.options;
  const lines = [
    `soak: ${r.seconds.toFixed(0)} s after a ${o.warmupMs / 1000} s warm-up, ${o.concurrency} clients, fault rate ${o.faultRate}, abort rate ${o.abortRate}, seed ${o.seed}`,
    `requests served: ${r.requests} (${(r.requests / r.seconds).toFixed(0)}/s), plus ${r.warmupRequests} in the warm-up`,
    '',
    'outcomes (client-visible):',
    ...Object.entries(r.outcomes).map(([k, v]) => `  ${String(v).padStart(8)}  ${k}`),
    '',
    `faults injected by the upstream: ${list(r.injected) || 'none'}`,
    `memory after GC: rss ${mb(r.memory.start.rss)} → ${mb(r.memory.end.rss)} MB (${pct(growth(r, 'rss'))}), heap ${mb(r.memory.start.heapUsed)} → ${mb(r.memory.end.heapUsed)} MB (${pct(growth(r, 'heapUsed'))})`,
    `peaks during the load: in flight ${r.peaks.inflight}, slots ${r.peaks.slots} of ${slotsTotal(r)}, queued ${r.peaks.queued}`,
    `at the end: in flight ${r.leftovers.inflight}, slots ${r.leftovers.slots}, queue ${r.leftovers.queued}, client connections ${r.leftovers.clientConnections}, upstream sockets in use ${r.leftovers.upstreamSocketsInUse}`,
    `open handles: ${total(r.handles.before)} before start, ${total(r.handles.running)} while idle (${list(r.handles.running)}), ${total(r.handles.leaked)} leaked after close`,
    `gateway log lines (level warn): ${r.logLines}`,
    '',
    ...cs.map((c) => `${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`),
  ];
  return lines.join('\n');
}
