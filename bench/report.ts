/** The bench's figures: the targets' PASS/MISS, the console table, the markdown file, the profile summary. */
import { readFileSync } from 'node:fs';
import type { LoadResult, Sequential } from './load.js';
import type { RedisUsage } from './redis.js';

export type TargetName =
  'direct' | 'bare' | 'tapgate' | 'tapgate-nousage' | 'tapgate-nometrics' | 'tapgate-redis' | 'nginx';

export const LABELS: Record<TargetName, string> = {
  direct: 'upstream direct',
  bare: 'bare http-proxy-3',
  tapgate: 'tapgate',
  'tapgate-nousage': 'tapgate, usage records off',
  'tapgate-nometrics': 'tapgate, metrics off',
  'tapgate-redis': 'tapgate, Redis store',
  nginx: 'nginx',
};

/** Issue 13: the Redis store keeps at least this share of the memory store's throughput. */
export const REDIS_MIN_RATIO = 0.85;

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
  cpu?: { json: number; sse: number; jsonUsPerReq: number; sseUsPerReq: number };
  /** CPU taken meanwhile by other processes and hypervisor steal (background noise), in % of one core. */
  otherCpu?: { json: number; sse: number };
  /** How busy the load core (upstream, load generator, Redis) was meanwhile, in %: near 100, it is the limit. */
  loadCore?: { json: number; sse: number };
  /** tapgate-redis: what Redis did per request under the JSON and SSE loads, and in the sequential JSON run. */
  redis?: { json: RedisUsage; sse: RedisUsage; seq?: RedisUsage };
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

export function computeRatios(targets: TargetResult[]): Pick<Report, 'ratios' | 'added'> {
  const by = (n: TargetName) => targets.find((t) => t.name === n && t.status === 'ok');
  const tg = by('tapgate');
  const tgr = by('tapgate-redis');
  const bare = by('bare');
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
      cpuPerRequestTapgateToBareJson: div(tg?.cpu?.jsonUsPerReq, bare?.cpu?.jsonUsPerReq),
      cpuPerRequestTapgateToBareSse: div(tg?.cpu?.sseUsPerReq, bare?.cpu?.sseUsPerReq),
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
    },
  };
}

export function computeChecks(r: Pick<Report, 'ratios' | 'added' | 'memory'>): Check[] {
  const ge = (v: number | null | undefined, min: number) =>
    v === null || v === undefined ? undefined : v >= min;
  const le = (v: number | null | undefined, max: number) =>
    v === null || v === undefined ? undefined : v <= max;
  const m = r.memory;
  const rssOpen = m === null ? null : m.rssOpen / MB;
  const growth = m === null ? null : (m.rssAfter - m.rssBefore) / MB;
  const allOpen = m !== null && m.opened === m.streams && m.completed === m.streams;
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
    {
      name: 'Added latency p50 (sequential, vs direct)',
      target: '≤ 0.50 ms',
      value: ms(r.added.latencyP50Ms),
      pass: le(r.added.latencyP50Ms, 0.5),
    },
    {
      name: 'Added latency p99 (sequential, vs direct)',
      target: '≤ 2.00 ms',
      value: ms(r.added.latencyP99Ms),
      pass: le(r.added.latencyP99Ms, 2),
    },
    {
      name: 'Extra time to first SSE byte p50 (vs direct)',
      target: '≤ 1.00 ms',
      value: ms(r.added.firstByteP50Ms),
      pass: le(r.added.firstByteP50Ms, 1),
    },
    {
      name: `RSS with ${m?.streams ?? 1000} open streams`,
      target: '≤ 150 MB',
      value:
        rssOpen === null
          ? '–'
          : `${fmt(rssOpen, 1)} MB${allOpen ? '' : ' (not all streams opened/completed)'}`,
      pass: rssOpen === null ? undefined : allOpen && rssOpen <= 150,
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
    '(JSON / SSE; steadier than rps when other work competes for the core); other CPU = every process',
    "that is not the bench's, plus hypervisor steal, meanwhile (background load: it skews the figures).",
    '',
    `tapgate ÷ bare http-proxy-3: JSON ${ratio(r.ratios.tapgateToBareJson)}, SSE ${ratio(r.ratios.tapgateToBareSse)}; ` +
      `tapgate ÷ direct: JSON ${ratio(r.ratios.tapgateToDirectJson)}, SSE ${ratio(r.ratios.tapgateToDirectSse)}`,
    `CPU per request, tapgate ÷ bare http-proxy-3: JSON ${ratio(r.ratios.cpuPerRequestTapgateToBareJson)}, SSE ${ratio(r.ratios.cpuPerRequestTapgateToBareSse)}`,
    ...redisLines(r),
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
      '**TTFB** = sequential SSE requests, time to the first body byte; **CPU** = the proxy during the measured load, % of one core, and CPU time per request (JSON / SSE; steadier than rps when other work competes for the core); ' +
      "**other CPU** = processes that are not the bench's, plus hypervisor steal, meanwhile (background load: it skews the figures).",
    '',
    `tapgate ÷ bare http-proxy-3: JSON ${ratio(r.ratios.tapgateToBareJson)}, SSE ${ratio(r.ratios.tapgateToBareSse)}. ` +
      `tapgate ÷ direct: JSON ${ratio(r.ratios.tapgateToDirectJson)}, SSE ${ratio(r.ratios.tapgateToDirectSse)}. ` +
      `CPU per request, tapgate ÷ bare http-proxy-3: JSON ${ratio(r.ratios.cpuPerRequestTapgateToBareJson)}, SSE ${ratio(r.ratios.cpuPerRequestTapgateToBareSse)}.`,
    '',
    ...redisLines(r).flatMap((l) => [l, '']),
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
