/** The bench's figures: the targets' PASS/MISS, the console table, the markdown file, the profile summary. */
import { readFileSync } from 'node:fs';
import type { LoadResult, Sequential } from './load.js';
import type { RedisUsage } from './redis.js';

export type TargetName =
  | 'direct'
  | 'bare'
  | 'undici'
  | 'tapgate'
  | 'tapgate-nousage'
  | 'tapgate-nometrics'
  | 'tapgate-hp3'
  | 'tapgate-redis'
  | 'tapgate-workers2'
  | 'nginx';

export const LABELS: Record<TargetName, string> = {
  direct: 'upstream direct',
  bare: 'bare http-proxy-3',
  undici: 'minimal undici proxy',
  tapgate: 'tapgate',
  'tapgate-workers2': 'tapgate, workers: 2',
  'tapgate-nousage': 'tapgate, usage records off',
  'tapgate-nometrics': 'tapgate, metrics off',
  'tapgate-hp3': 'tapgate on http-proxy-3',
  'tapgate-redis': 'tapgate, Redis store',
  nginx: 'nginx',
};

/** Issue 13: the Redis store keeps at least this share of the memory store's throughput. */
export const REDIS_MIN_RATIO = 0.85;
/** Issue 17: tapgate allocates at most bare http-proxy-3's bytes per request plus this. */
export const ALLOC_MARGIN_KB = 8;
/** Issue 17: server.workers 2 costs at most this much more CPU per request than one worker. */
export const WORKERS_MAX_CPU_RATIO = 1.1;
/** Issue 17: added latency at low load (p50, p99) and extra time to the first SSE byte, in ms. */
export const ADDED_P50_MS = 0.3;
export const ADDED_P99_MS = 2;
export const FIRST_BYTE_MS = 0.5;
/** Issue 17: RSS with 1,000 open streams, in MB. */
export const RSS_OPEN_MB = 100;

/** Allocated bytes per request under one short load, from V8's sampling heap profiler. */
export interface HeapAlloc {
  bytesPerRequest: number;
  requests: number;
  samples: number;
  /** Mean bytes between samples. */
  interval: number;
  /** Throughput meanwhile (the profiler slows the process a little; not a timed figure). */
  rps: number;
}

export interface TargetResult {
  name: TargetName;
  label: string;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  json?: LoadResult;
  sse?: LoadResult;
  /** Sequential JSON requests: time to the end of the response (ms). */
  seq?: Sequential;
  /** Sequential SSE requests: time to the first body byte (ms). */
  ttfb?: Sequential;
  /** CPU used by the proxy's processes while measured, in % of one core. */
  cpu?: {
    json: number;
    sse: number;
    jsonUsPerReq: number;
    sseUsPerReq: number;
    /** A cluster (tapgate-workers2): µs per request of each process, the primary first. */
    split?: { json: number[]; sse: number[] };
  };
  /** CPU taken meanwhile by other processes and hypervisor steal (background noise), in % of one core. */
  otherCpu?: { json: number; sse: number };
  /** How busy the load core (upstream, load generator, Redis) was meanwhile, in %: near 100, it is the limit. */
  loadCore?: { json: number; sse: number };
  /** tapgate-redis: what Redis did per request under the JSON and SSE loads, and in the sequential JSON run. */
  redis?: { json: RedisUsage; sse: RedisUsage; seq?: RedisUsage };
  /** Node proxies (one process): allocated bytes per request, JSON and SSE. */
  alloc?: { json: HeapAlloc; sse: HeapAlloc };
}

export interface MemoryResult {
  streams: number;
  opened: number;
  completed: number;
  /** VmRSS in bytes: just after boot (after a GC, before any load), then around the test. */
  rssBoot: number;
  rssBefore: number;
  rssOpen: number;
  rssAfter: number;
  /** heapUsed in bytes, after a GC (the open one: GC with the streams still open). */
  heapBefore: number;
  heapOpen: number;
  heapAfter: number;
}

export interface Check {
  name: string;
  target: string;
  value: string;
  pass: boolean | undefined;
}

export interface Report {
  tool: 'tapgate bench';
  date: string;
  mode: 'full' | 'quick';
  command: string;
  machine: { node: string; cpu: string; cores: number; memoryGB: number; os: string };
  howRun: string[];
  settings: Record<string, string | number>;
  tapgate: Record<string, string | number | boolean | string[]>;
  targets: TargetResult[];
  ratios: Record<string, number | null>;
  added: Record<string, number | null>;
  memory: MemoryResult | null;
  checks: Check[];
}

/** Allowed RSS growth after the streams close and a GC: allocator and V8 page retention, not a leak. */
export const GROWTH_TOLERANCE_MB = 10;
export const MB = 1024 * 1024;

const fmt = (v: number | undefined | null, digits = 0) =>
  v === undefined || v === null || Number.isNaN(v)
    ? '–'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (v: number | undefined | null) => (v === undefined || v === null ? '–' : `${fmt(v, 2)} ms`);
const ratio = (v: number | null | undefined) => (v === undefined || v === null ? '–' : `${fmt(v, 2)}×`);
const kb = (bytes: number | null) => (bytes === null ? null : bytes / 1024);

export function computeRatios(targets: TargetResult[]): Pick<Report, 'ratios' | 'added'> {
  const by = (n: TargetName) => targets.find((t) => t.name === n && t.status === 'ok');
  const tg = by('tapgate');
  const tgr = by('tapgate-redis');
  const bare = by('bare');
  const undici = by('undici');
  const w2 = by('tapgate-workers2');
  const direct = by('direct');
  const div = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? null : a / b;
  const sub = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? null : a - b;
  const sum = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a + b;
  return {
    ratios: {
      tapgateToBareJson: div(tg?.json?.rps, bare?.json?.rps),
      tapgateToBareSse: div(tg?.sse?.rps, bare?.sse?.rps),
      tapgateToDirectJson: div(tg?.json?.rps, direct?.json?.rps),
      tapgateToDirectSse: div(tg?.sse?.rps, direct?.sse?.rps),
      // The stretch goal: tapgate as fast as the minimal undici pass-through.
      tapgateToUndiciJson: div(tg?.json?.rps, undici?.json?.rps),
      tapgateToUndiciSse: div(tg?.sse?.rps, undici?.sse?.rps),
      undiciToBareJson: div(undici?.json?.rps, bare?.json?.rps),
      undiciToBareSse: div(undici?.sse?.rps, bare?.sse?.rps),
      cpuPerRequestTapgateToBareJson: div(tg?.cpu?.jsonUsPerReq, bare?.cpu?.jsonUsPerReq),
      cpuPerRequestTapgateToBareSse: div(tg?.cpu?.sseUsPerReq, bare?.cpu?.sseUsPerReq),
      cpuPerRequestUndiciToBareJson: div(undici?.cpu?.jsonUsPerReq, bare?.cpu?.jsonUsPerReq),
      cpuPerRequestUndiciToBareSse: div(undici?.cpu?.sseUsPerReq, bare?.cpu?.sseUsPerReq),
      // CPU of the primary and every worker (the process group) per request, against one worker's.
      cpuPerRequestWorkers2ToWorkers1Json: div(w2?.cpu?.jsonUsPerReq, tg?.cpu?.jsonUsPerReq),
      cpuPerRequestWorkers2ToWorkers1Sse: div(w2?.cpu?.sseUsPerReq, tg?.cpu?.sseUsPerReq),
      redisToMemoryJson: div(tgr?.json?.rps, tg?.json?.rps),
      redisToMemorySse: div(tgr?.sse?.rps, tg?.sse?.rps),
      cpuPerRequestRedisToMemoryJson: div(tgr?.cpu?.jsonUsPerReq, tg?.cpu?.jsonUsPerReq),
      cpuPerRequestRedisToMemorySse: div(tgr?.cpu?.sseUsPerReq, tg?.cpu?.sseUsPerReq),
      // tapgate's CPU plus Redis's, per request: what the Redis store costs the cluster in all.
      cpuWithRedisPerRequestRedisToMemoryJson: div(
        sum(tgr?.cpu?.jsonUsPerReq, tgr?.redis?.json.cpuUsPerRequest),
        tg?.cpu?.jsonUsPerReq,
      ),
      cpuWithRedisPerRequestRedisToMemorySse: div(
        sum(tgr?.cpu?.sseUsPerReq, tgr?.redis?.sse.cpuUsPerRequest),
        tg?.cpu?.sseUsPerReq,
      ),
    },
    added: {
      latencyP50Ms: sub(tg?.seq?.p50, direct?.seq?.p50),
      latencyP99Ms: sub(tg?.seq?.p99, direct?.seq?.p99),
      firstByteP50Ms: sub(tg?.ttfb?.p50, direct?.ttfb?.p50),
      // KB allocated per request beyond bare http-proxy-3's.
      allocOverBareKbJson: kb(sub(tg?.alloc?.json.bytesPerRequest, bare?.alloc?.json.bytesPerRequest)),
      allocOverBareKbSse: kb(sub(tg?.alloc?.sse.bytesPerRequest, bare?.alloc?.sse.bytesPerRequest)),
    },
  };
}

export function computeChecks(
  r: Pick<Report, 'ratios' | 'added' | 'memory' | 'targets' | 'tapgate'>,
): Check[] {
  const ge = (v: number | null | undefined, min: number) =>
    v === null || v === undefined ? undefined : v >= min;
  const le = (v: number | null | undefined, max: number) =>
    v === null || v === undefined ? undefined : v <= max;
  const by = (n: TargetName) => r.targets.find((t) => t.name === n && t.status === 'ok');
  const tg = by('tapgate');
  const bare = by('bare');
  const m = r.memory;
  const rssOpen = m === null ? null : m.rssOpen / MB;
  const growth = m === null ? null : (m.rssAfter - m.rssBefore) / MB;
  const allOpen = m !== null && m.opened === m.streams && m.completed === m.streams;
  // The first-byte target is the "with the pre-output hold on": said in the check's name.
  const hold =
    r.tapgate.hold === undefined ? '' : r.tapgate.hold === true ? ', proxy.hold on' : ', proxy.hold OFF';
  const cpu = (kind: 'json' | 'sse') => {
    const key = kind === 'json' ? 'jsonUsPerReq' : 'sseUsPerReq';
    const a = tg?.cpu?.[key];
    const b = bare?.cpu?.[key];
    const x =
      kind === 'json' ? r.ratios.cpuPerRequestTapgateToBareJson : r.ratios.cpuPerRequestTapgateToBareSse;
    return {
      name: `CPU per request, tapgate vs bare http-proxy-3, ${kind === 'json' ? 'JSON' : 'SSE'}`,
      target: '≤ bare',
      value: a === undefined || b === undefined ? '–' : `${fmt(a)} vs ${fmt(b)} µs (${ratio(x)})`,
      pass: le(x, 1),
    };
  };
  const alloc = (kind: 'json' | 'sse') => {
    const a = tg?.alloc?.[kind].bytesPerRequest;
    const b = bare?.alloc?.[kind].bytesPerRequest;
    const over = kind === 'json' ? r.added.allocOverBareKbJson : r.added.allocOverBareKbSse;
    return {
      name: `Allocated per request, tapgate vs bare, ${kind === 'json' ? 'JSON' : 'SSE'}`,
      target: `≤ bare + ${ALLOC_MARGIN_KB} KB`,
      value:
        a === undefined || b === undefined || over === undefined || over === null
          ? '–'
          : `${fmt(a / 1024, 1)} vs ${fmt(b / 1024, 1)} KB (${over >= 0 ? '+' : ''}${fmt(over, 1)})`,
      pass: le(over, ALLOC_MARGIN_KB),
    };
  };
  const workers = (kind: 'json' | 'sse') => {
    const x =
      kind === 'json'
        ? r.ratios.cpuPerRequestWorkers2ToWorkers1Json
        : r.ratios.cpuPerRequestWorkers2ToWorkers1Sse;
    return {
      name: `CPU per request, workers: 2 ÷ workers: 1, ${kind === 'json' ? 'JSON' : 'SSE'}`,
      target: `≤ ${fmt(WORKERS_MAX_CPU_RATIO, 2)}×`,
      value: ratio(x),
      pass: le(x, WORKERS_MAX_CPU_RATIO),
    };
  };
  return [
    {
      name: 'JSON throughput, tapgate ÷ bare http-proxy-3',
      target: '≥ 1.00×',
      value: ratio(r.ratios.tapgateToBareJson),
      pass: ge(r.ratios.tapgateToBareJson, 1),
    },
    {
      name: 'SSE throughput, tapgate ÷ bare http-proxy-3',
      target: '≥ 1.00×',
      value: ratio(r.ratios.tapgateToBareSse),
      pass: ge(r.ratios.tapgateToBareSse, 1),
    },
    cpu('json'),
    cpu('sse'),
    alloc('json'),
    alloc('sse'),
    {
      name: 'Added latency p50 (sequential, vs direct)',
      target: `≤ ${fmt(ADDED_P50_MS, 2)} ms`,
      value: ms(r.added.latencyP50Ms),
      pass: le(r.added.latencyP50Ms, ADDED_P50_MS),
    },
    {
      name: 'Added latency p99 (sequential, vs direct)',
      target: `≤ ${fmt(ADDED_P99_MS, 2)} ms`,
      value: ms(r.added.latencyP99Ms),
      pass: le(r.added.latencyP99Ms, ADDED_P99_MS),
    },
    {
      name: `Extra time to first SSE byte p50 (vs direct${hold})`,
      target: `≤ ${fmt(FIRST_BYTE_MS, 2)} ms`,
      value: ms(r.added.firstByteP50Ms),
      // The target is set with the hold on: a run with it off measures something else.
      pass: r.tapgate.hold === false ? undefined : le(r.added.firstByteP50Ms, FIRST_BYTE_MS),
    },
    workers('json'),
    workers('sse'),
    {
      name: `RSS with ${m?.streams ?? 1000} open streams`,
      target: `≤ ${RSS_OPEN_MB} MB`,
      value:
        rssOpen === null
          ? '–'
          : `${fmt(rssOpen, 1)} MB${allOpen ? '' : ' (not all streams opened/completed)'}`,
      pass: rssOpen === null ? undefined : allOpen && rssOpen <= RSS_OPEN_MB,
    },
    {
      name: 'RSS growth after they close (after GC)',
      target: `≤ ${GROWTH_TOLERANCE_MB} MB`,
      value: growth === null ? '–' : `${growth >= 0 ? '+' : ''}${fmt(growth, 1)} MB`,
      pass: growth === null ? undefined : allOpen && growth <= GROWTH_TOLERANCE_MB,
    },
    {
      name: 'JSON throughput, tapgate Redis store ÷ memory store',
      target: `≥ ${fmt(REDIS_MIN_RATIO, 2)}×`,
      value: ratio(r.ratios.redisToMemoryJson),
      pass: ge(r.ratios.redisToMemoryJson, REDIS_MIN_RATIO),
    },
    {
      name: 'SSE throughput, tapgate Redis store ÷ memory store',
      target: `≥ ${fmt(REDIS_MIN_RATIO, 2)}×`,
      value: ratio(r.ratios.redisToMemorySse),
      pass: ge(r.ratios.redisToMemorySse, REDIS_MIN_RATIO),
    },
  ];
}

const verdict = (c: Check) => (c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'MISS');

/** A text or markdown table; the first `left` columns are left-aligned, the rest (figures) right-aligned. */
function table(head: string[], rows: string[][], markdown: boolean, left = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const right = (i: number) => i >= left;
  const cell = (s: string, i: number) => (right(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  if (markdown) {
    const line = (r: string[]) => `| ${r.map(cell).join(' | ')} |`;
    const rule = `| ${widths.map((w, i) => (right(i) ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join(' | ')} |`;
    return [line(head), rule, ...rows.map(line)].join('\n');
  }
  const line = (r: string[]) => r.map(cell).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function resultsTable(r: Report, markdown: boolean): string {
  const head = [
    'target',
    'JSON rps',
    'JSON p50',
    'JSON p99',
    'SSE rps',
    'SSE p50',
    'SSE p99',
    'seq p50',
    'seq p99',
    'TTFB p50',
    'CPU JSON/SSE',
    'CPU µs/req',
    'alloc KB/req JSON/SSE',
    'other CPU',
  ];
  const rows = r.targets.map((t) => {
    if (t.status !== 'ok')
      return [t.label, `${t.status}: ${t.note ?? ''}`, ...Array(head.length - 2).fill('')];
    return [
      t.label,
      fmt(t.json?.rps),
      ms(t.json?.p50),
      ms(t.json?.p99),
      fmt(t.sse?.rps),
      ms(t.sse?.p50),
      ms(t.sse?.p99),
      ms(t.seq?.p50),
      ms(t.seq?.p99),
      ms(t.ttfb?.p50),
      t.cpu === undefined ? '–' : `${fmt(t.cpu.json)}% / ${fmt(t.cpu.sse)}%`,
      t.cpu === undefined ? '–' : `${fmt(t.cpu.jsonUsPerReq)} / ${fmt(t.cpu.sseUsPerReq)}`,
      t.alloc === undefined
        ? '–'
        : `${fmt(t.alloc.json.bytesPerRequest / 1024, 1)} / ${fmt(t.alloc.sse.bytesPerRequest / 1024, 1)}`,
      t.otherCpu === undefined ? '–' : `${fmt(t.otherCpu.json)}% / ${fmt(t.otherCpu.sse)}%`,
    ];
  });
  if (!markdown) {
    // A failed target's note can be long: print it under the table rather than in a cell.
    for (const row of rows) if (row[1]!.length > 40) row[1] = row[1]!.slice(0, 40) + '…';
  }
  return table(head, rows, markdown);
}

function checksTable(r: Report, markdown: boolean): string {
  return table(
    ['target', 'goal', 'measured', 'result'],
    r.checks.map((c) => [c.name, c.target, c.value, verdict(c)]),
    markdown,
  );
}

function memoryLines(r: Report): string[] {
  const m = r.memory;
  if (m === null) return ['Memory: not measured.'];
  const mb = (b: number) => `${fmt(b / MB, 1)} MB`;
  return [
    `Memory (tapgate, VmRSS from /proc; heapUsed after a GC): just after boot ${mb(m.rssBoot)}; ` +
      `after the load tests, before the streams ${mb(m.rssBefore)} (heap ${mb(m.heapBefore)}), ` +
      `with ${m.opened}/${m.streams} streams open ${mb(m.rssOpen)} (heap after GC ${mb(m.heapOpen)}, ` +
      `${fmt((m.heapOpen - m.heapBefore) / m.streams / 1024, 1)} KB per stream), ` +
      `after they closed and a GC ${mb(m.rssAfter)} (heap ${mb(m.heapAfter)}); ${m.completed}/${m.streams} ended in response.completed.`,
  ];
}

function usageText(u: RedisUsage): string {
  const by = Object.entries(u.byCommand)
    // By count as printed, then by name: commands run once per request stay together, in a stable order.
    .sort((a, b) => Math.round(100 * b[1]) - Math.round(100 * a[1]) || a[0].localeCompare(b[0]))
    .map(([name, n]) => `${name} ${fmt(n, 2)}`)
    .join(', ');
  return (
    `${fmt(u.commandsPerRequest, 2)} commands (${by}), ${fmt(u.readsPerRequest, 2)} client reads, ` +
    `${fmt(u.cpuUsPerRequest)} µs of Redis CPU`
  );
}

/** The Redis store against the memory store, and what Redis did per request; nothing when it did not run. */
function redisLines(r: Report): string[] {
  const out: string[] = [];
  const x = r.ratios;
  if (x.redisToMemoryJson !== null || x.redisToMemorySse !== null) {
    const pass = (v: number | null | undefined) =>
      v === null || v === undefined ? 'n/a' : v >= REDIS_MIN_RATIO ? 'PASS' : 'MISS';
    out.push(
      `tapgate, Redis store ÷ tapgate (memory store): throughput JSON ${ratio(x.redisToMemoryJson)} (${pass(x.redisToMemoryJson)}), ` +
        `SSE ${ratio(x.redisToMemorySse)} (${pass(x.redisToMemorySse)}), goal ≥ ${fmt(REDIS_MIN_RATIO, 2)}×; ` +
        `CPU per request, tapgate's process: JSON ${ratio(x.cpuPerRequestRedisToMemoryJson)}, SSE ${ratio(x.cpuPerRequestRedisToMemorySse)}; ` +
        `tapgate's plus Redis's: JSON ${ratio(x.cpuWithRedisPerRequestRedisToMemoryJson)}, SSE ${ratio(x.cpuWithRedisPerRequestRedisToMemorySse)}.`,
    );
  }
  const t = r.targets.find((t) => t.name === 'tapgate-redis' && t.status === 'ok');
  if (t?.redis !== undefined) {
    const u = t.redis;
    out.push(
      'Redis per request (tapgate, Redis store; INFO commandstats and total_reads_processed, and its CPU from /proc, ' +
        "around each run; commands run inside a script or a MULTI count too; a client read is one write of tapgate's " +
        `reaching Redis, several of which can arrive together under load): JSON load ${usageText(u.json)}; ` +
        `SSE load ${usageText(u.sse)}` +
        (u.seq === undefined ? '.' : `; sequential JSON (one request at a time) ${usageText(u.seq)}.`),
    );
  }
  const busy = r.targets.filter((t) => t.loadCore !== undefined);
  if (busy.length > 0 && String(r.settings.pinned) !== 'no') {
    out.push(
      'Load core busy during the measured loads, JSON / SSE (the upstream, the load generator, Redis for the Redis store, ' +
        'and any other process there; near 100%, the load side limits the figures): ' +
        busy.map((t) => `${t.label} ${fmt(t.loadCore!.json)}% / ${fmt(t.loadCore!.sse)}%`).join(', ') +
        '.',
    );
  }
  return out;
}

/** The throughput and CPU ratios behind the checks, and the stretch goal (printed, not checked). */
function ratioLines(r: Report): string[] {
  const x = r.ratios;
  return [
    `tapgate ÷ bare http-proxy-3: JSON ${ratio(x.tapgateToBareJson)}, SSE ${ratio(x.tapgateToBareSse)}; ` +
      `tapgate ÷ direct: JSON ${ratio(x.tapgateToDirectJson)}, SSE ${ratio(x.tapgateToDirectSse)}`,
    `Stretch (not checked): tapgate ÷ minimal undici proxy: JSON ${ratio(x.tapgateToUndiciJson)}, SSE ${ratio(x.tapgateToUndiciSse)}; ` +
      `undici ÷ bare http-proxy-3: JSON ${ratio(x.undiciToBareJson)}, SSE ${ratio(x.undiciToBareSse)} ` +
      `(CPU per request ${ratio(x.cpuPerRequestUndiciToBareJson)} / ${ratio(x.cpuPerRequestUndiciToBareSse)})`,
    `CPU per request, tapgate ÷ bare http-proxy-3: JSON ${ratio(x.cpuPerRequestTapgateToBareJson)}, SSE ${ratio(x.cpuPerRequestTapgateToBareSse)}; ` +
      `workers: 2 ÷ workers: 1: JSON ${ratio(x.cpuPerRequestWorkers2ToWorkers1Json)}, SSE ${ratio(x.cpuPerRequestWorkers2ToWorkers1Sse)}` +
      splitText(r),
  ];
}

/** Where a cluster's CPU per request went: the primary, then each worker. */
function splitText(r: Report): string {
  const split = r.targets.find((t) => t.name === 'tapgate-workers2' && t.status === 'ok')?.cpu?.split;
  if (split === undefined) return '';
  const one = (us: number[]) =>
    `primary ${fmt(us[0], 1)} + workers ${us
      .slice(1)
      .map((u) => fmt(u))
      .join(' + ')}`;
  // The kernel hands each new connection to whichever worker accepts first (SCHED_NONE): one
  // worker can end up with nearly all of them, and the figure is then close to one worker's.
  const skewed = (us: number[]) => {
    const w = us.slice(1);
    const total = w.reduce((a, b) => a + b, 0);
    return w.some((u) => u < total / (4 * w.length));
  };
  const note =
    skewed(split.json) || skewed(split.sse)
      ? "; one worker served most connections in a load (the kernel picks the worker that accepts), so that figure is close to one worker's"
      : '';
  return ` (µs per request: JSON ${one(split.json)}; SSE ${one(split.sse)}${note})`;
}

/** How the allocation column was measured, with the sample counts behind each figure. */
function allocLines(r: Report): string[] {
  const with_ = r.targets.filter((t) => t.alloc !== undefined);
  if (with_.length === 0) return [];
  const a = with_[0]!.alloc!.json;
  return [
    `Allocated bytes per request: V8's sampling heap profiler (HeapProfiler.startSampling, samplingInterval ${fmt(a.interval)} B, ` +
      "includeObjectsCollectedByMajorGC and …MinorGC true) in the proxy's own process, during one extra short JSON load and one SSE load " +
      "after the timed ones; the sum of the profile's (scaled) self sizes ÷ the requests completed. Samples, JSON / SSE: " +
      with_.map((t) => `${t.label} ${fmt(t.alloc!.json.samples)} / ${fmt(t.alloc!.sse.samples)}`).join(', ') +
      '. Not measured for tapgate, workers: 2 (each worker is its own heap).',
  ];
}

export function renderConsole(r: Report): string {
  const out = [
    '',
    `tapgate bench (${r.mode}), ${r.date}`,
    ...r.howRun.map((l) => `  ${l}`),
    '',
    resultsTable(r, false),
    '',
    'Columns: rps and p50/p99 under load (50 connections); seq = sequential JSON requests on one connection',
    '(time to the whole response); TTFB = sequential SSE requests, time to the first body byte;',
    'CPU = the proxy process(es) during the measured load, % of one core, and CPU time per request',
    '(JSON / SSE; steadier than rps when other work competes for the core; with workers: 2, the primary',
    'and both workers); alloc = bytes allocated per request (V8 sampling heap profiler, objects already',
    'collected included, one extra short load each); other CPU = every process that is not the',
    "bench's, plus hypervisor steal, meanwhile (background load: it skews the figures).",
    '',
    ...ratioLines(r),
    ...redisLines(r),
    ...allocLines(r),
    ...memoryLines(r),
    '',
    checksTable(r, false),
  ];
  for (const t of r.targets) if (t.note !== undefined) out.push(`note, ${t.label}: ${t.note}`);
  return out.join('\n') + '\n';
}

export function renderMarkdown(r: Report): string {
  return [
    `# tapgate bench: ${r.mode} run, ${r.date}`,
    '',
    'Written by `npm run bench` (see [README](../README.md)). One machine, one run, the same load for every target.',
    '',
    ...r.howRun.map((l) => `- ${l}`),
    '',
    resultsTable(r, true),
    '',
    'rps and p50/p99 under load; **seq** = sequential JSON requests on one connection (whole response); ' +
      '**TTFB** = sequential SSE requests, time to the first body byte; **CPU** = the proxy during the measured load, % of one core, and CPU time per request (JSON / SSE; steadier than rps when other work competes for the core; with workers: 2, the primary and both workers); ' +
      '**alloc** = bytes allocated per request (V8 sampling heap profiler, objects already collected included, one extra short load each); ' +
      "**other CPU** = processes that are not the bench's, plus hypervisor steal, meanwhile (background load: it skews the figures).",
    '',
    ...ratioLines(r).flatMap((l) => [l, '']),
    ...redisLines(r).flatMap((l) => [l, '']),
    ...allocLines(r).flatMap((l) => [l, '']),
    ...memoryLines(r),
    '',
    checksTable(r, true),
    '',
    ...r.targets.filter((t) => t.note !== undefined).map((t) => `- ${t.label}: ${t.note}`),
    '',
  ].join('\n');
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  windowMs: number;
  busyMs: number;
  functions: { name: string; where: string; selfMs: number; pct: number }[];
  groups: { group: string; selfMs: number; pct: number }[];
}

function groupOf(url: string, name: string): string {
  if (url === '') return ['(garbage collector)', '(program)', '(root)'].includes(name) ? name : '(V8/native)';
  if (url.startsWith('node:')) return 'node internals';
  // tapgate's own sources, run from their compiled copy (app/compiled-cache.js).
  const compiled = /node_modules\/\.cache\/tapgate\/[^/]+\/(core|plugins|app)\//.exec(url);
  if (compiled !== null) return compiled[1] === 'app' ? 'tapgate app' : `tapgate ${compiled[1]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return nm[1]!;
  if (url.includes('/core/')) return 'tapgate core';
  if (url.includes('/plugins/')) return 'tapgate plugins';
  if (url.includes('/bench/')) return 'bench/*';
  return url;
}

function shortUrl(url: string, line: number): string {
  if (url === '') return '';
  const u = url
    .replace(/^file:\/\//, '')
    .replace(/^.*node_modules\/\.cache\/tapgate\/[^/]+\//, '')
    .replace(/^.*node_modules\//, '')
    .replace(/^.*\/(core|plugins)\//, '$1/');
  // tsx's transpiled modules report every function on line 1: the file alone is the honest answer.
  return /\.(c|m)?ts$/.test(u) ? u : `${u}:${line + 1}`;
}

/**
 * Self time per function within [fromUs, toUs] of the profile's clock (the monotonic clock): each
 * sample is charged the interval up to the next one. Idle time is left out of the percentages.
 */
export function summariseProfile(file: string, fromUs: number, toUs: number, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile & { endTime: number };
  if (fromUs < p.startTime || toUs > p.endTime)
    throw new Error(`bench: the measured window is outside the profile (${file}): not the same clock?`);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  const groups = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const node = byId.get(p.samples[i]!);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)') continue;
    busy += dt;
    const key = `${name}@${url}:${lineNumber}`;
    const e = self.get(key) ?? { name, where: shortUrl(url, lineNumber), us: 0 };
    e.us += dt;
    self.set(key, e);
    const g = groupOf(url, name);
    groups.set(g, (groups.get(g) ?? 0) + dt);
  }
  const pct = (us: number) => (busy === 0 ? 0 : (100 * us) / busy);
  return {
    windowMs: (toUs - fromUs) / 1000,
    busyMs: busy / 1000,
    functions: [...self.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, pct: pct(e.us) })),
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, us]) => ({ group, selfMs: us / 1000, pct: pct(us) })),
  };
}

/** `requests`: how many the load completed in the window, for the µs-per-request column. */
export function renderProfile(
  s: ProfileSummary,
  markdown: boolean,
  title: string,
  notes: string[],
  requests: number,
): string {
  const perReq = (selfMs: number) => fmt((selfMs * 1000) / requests, 1);
  const fns = table(
    ['function', 'where', 'self ms', 'self %', 'µs/req'],
    s.functions.map((f) => [f.name, f.where, fmt(f.selfMs), `${fmt(f.pct, 1)}%`, perReq(f.selfMs)]),
    markdown,
    2,
  );
  const groups = table(
    ['where the time goes', 'self ms', 'self %', 'µs/req'],
    s.groups.map((g) => [g.group, fmt(g.selfMs), `${fmt(g.pct, 1)}%`, perReq(g.selfMs)]),
    markdown,
  );
  const busy =
    `Window ${fmt(s.windowMs)} ms, ${fmt(requests)} requests; busy (not idle) ${fmt(s.busyMs)} ms = ` +
    `${fmt((100 * s.busyMs) / s.windowMs)}% of one core, ${perReq(s.busyMs)} µs of CPU per request; percentages are of busy time.`;
  return [
    markdown ? `## ${title}` : `== ${title}`,
    '',
    ...notes.map((n) => (markdown ? `- ${n}` : n)),
    ...(markdown ? [''] : []),
    busy,
    '',
    groups,
    '',
    fns,
    '',
  ].join('\n');
}
