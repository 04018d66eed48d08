/**
 * `npm run bench [-- --quick | --profile]`: one command, one run on one machine.
 *
 * Starts a loopback upstream, then measures in sequence, under the same load: the upstream
 * directly, a bare http-proxy-3, a minimal undici pass-through, tapgate (shipped plugins, client
 * auth on, a dashboard viewer connected when the dashboard plugin exists), the same tapgate with its
 * state on a Redis the bench starts (when redis-server is installed), the same tapgate with
 * server.workers 2, and nginx when installed. Then tapgate's RSS with 1,000 open streams, and each
 * node proxy's allocated bytes per request. Prints the table and PASS/MISS per target, and writes
 * bench/results/.
 * See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { configSchema } from '../core/config/config-schema.js';
import {
  type LoadGen,
  type LoadResult,
  type LoadSettings,
  openStreams,
  request,
  runLoad,
  sequential,
  type Target,
  validate,
  wrkInstalled,
  wrkVersion,
} from './load.js';
import { HEAP_START, HEAP_STOP, type HeapSample } from './heap-sampler.mjs';
import { findNginx, nginxArgs, nginxVersion } from './nginx.js';
import {
  type Child,
  coreBusySeconds,
  CORES,
  cpuSnapshot,
  freePort,
  groupCpuSeconds,
  groupCpuSplit,
  HAS_TASKSET,
  listeningWorkers,
  LOAD_CORE,
  openFileLimit,
  otherCpuSeconds,
  stealSeconds,
  PINNED,
  pinSelf,
  PROXY_CORE,
  rssBytes,
  spawnPinned,
  stopAll,
  waitForPort,
} from './procs.js';
import {
  computeChecks,
  computeRatios,
  type HeapAlloc,
  LABELS,
  MB,
  type MemoryResult,
  renderConsole,
  renderMarkdown,
  renderProfile,
  type Report,
  summariseProfile,
  type TargetName,
  type TargetResult,
} from './report.js';
import {
  type BenchRedis,
  findRedis,
  perRequest,
  redisVersion,
  type RedisUsage,
  startRedis,
} from './redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');
const CLIENT_KEY = `sk-bench-${randomBytes(12).toString('hex')}`;
const ADMIN_TOKEN = `adm-bench-${randomBytes(12).toString('hex')}`;
const PATH = '/v1/responses';
/**
 * The bench upstream's maxConcurrency in both tapgate targets: high enough never to limit, but every
 * request takes a slot, which with the Redis store is a cluster-wide lease (its one round trip).
 */
const MAX_CONCURRENCY = 10_000;
/** The tapgate-workers2 target's server.workers; every other tapgate target runs one process. */
const WORKERS2 = 2;
/**
 * Where tapgate-workers2 runs: on the proxy core with everything else of tapgate's (the default), or
 * with BENCH_WORKERS_CORES=all on every core, sharing core 1 with the load generator and upstream.
 */
function workersCore(): number | 'all' {
  const v = process.env.BENCH_WORKERS_CORES ?? 'proxy';
  if (v !== 'proxy' && v !== 'all')
    throw new Error(`bench: BENCH_WORKERS_CORES must be proxy or all, got ${v}`);
  return v === 'all' ? 'all' : PROXY_CORE;
}
/**
 * The heap profiler's mean bytes between samples: V8's default. 512 gave the same bytes per request
 * (within 1%) but slowed the proxy 2–3×, which changes how many requests each write and read serve.
 */
const HEAP_INTERVAL = 32_768;

const HELP = `Usage: npm run bench [-- --quick | --profile]

  (default)   the full run: every target, ~5 minutes; writes bench/results/latest.{json,md}
  --quick     a short smoke run; writes bench/results/quick.{json,md}.tmp (not tracked)
  --profile   tapgate alone under the JSON then the SSE load, with node --cpu-prof; writes
              bench/results/tapgate.cpuprofile (not tracked) and bench/results/profile.md;
              BENCH_TARGETS=bare,undici,tapgate profiles the bare http-proxy-3 and the minimal
              undici pass-through too, for comparison (and tapgate-redis: tapgate with its state
              on Redis; tapgate-nousage: without usage records; tapgate-hp3: on proxy.transport
              http-proxy-3)

Environment: BENCH_DURATION (s, measured, default 10), BENCH_WARMUP (s, default 3),
BENCH_CONNECTIONS (default 50), BENCH_STREAMS (default 1000), BENCH_SEQ (sequential requests,
default 2000), BENCH_TARGETS (default direct,bare,undici,tapgate,tapgate-redis,tapgate-workers2,nginx),
BENCH_LOADGEN (auto | autocannon | wrk), BENCH_KEEP_TMP=1 (keep the temp dir: configs, logs),
BENCH_WAIT_QUIET=<s> (before each target, wait up to that long for other processes to go below
10% of a core), BENCH_DASHBOARD=0 (tapgate without the dashboard plugin and viewer),
BENCH_LOG_LEVEL (override the shipped log.level), BENCH_WORKERS_CORES (proxy | all: where
tapgate-workers2 runs, default proxy: the proxy core).`;

interface Options {
  mode: 'full' | 'quick' | 'profile';
  warmup: number;
  duration: number;
  connections: number;
  streams: number;
  seq: number;
  ttfb: number;
  targets: TargetName[];
  loadgen: LoadGen;
}

function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`bench: ${name} must be a positive number, got ${v}`);
  return n;
}

/** The single node processes --profile can cover (a cluster would write one profile per worker). */
const PROFILED: TargetName[] = [
  'bare',
  'undici',
  'tapgate',
  'tapgate-nousage',
  'tapgate-redis',
  'tapgate-hp3',
];

/** --profile covers tapgate, or the node proxies named in BENCH_TARGETS (bare, undici, tapgate, tapgate-redis). */
function profileTargets(): TargetName[] {
  const named = process.env.BENCH_TARGETS;
  if (named === undefined || named === '') return ['tapgate'];
  const list = named.split(',').map((t) => t.trim()) as TargetName[];
  for (const t of list)
    if (!PROFILED.includes(t))
      throw new Error(`bench: --profile covers ${PROFILED.join(', ')} (one node process each), not ${t}`);
  return list;
}

function options(): Options {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    process.exit(0);
  }
  const quick = values.quick === true;
  const mode = values.profile === true ? 'profile' : quick ? 'quick' : 'full';
  // tapgate-nousage (usage records off), tapgate-nometrics and tapgate-hp3 (proxy.transport:
  // http-proxy-3) are not in the default run: name them to compare.
  const all: TargetName[] = [
    'direct',
    'bare',
    'undici',
    'tapgate',
    'tapgate-redis',
    'tapgate-workers2',
    'nginx',
  ];
  const known: TargetName[] = [...all, 'tapgate-nousage', 'tapgate-nometrics', 'tapgate-hp3'];
  const targets = (process.env.BENCH_TARGETS ?? all.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '') as TargetName[];
  for (const t of targets)
    if (!known.includes(t)) throw new Error(`bench: unknown target in BENCH_TARGETS: ${t}`);
  const gen = process.env.BENCH_LOADGEN ?? 'auto';
  if (!['auto', 'autocannon', 'wrk'].includes(gen))
    throw new Error(`bench: BENCH_LOADGEN must be auto, autocannon or wrk, got ${gen}`);
  workersCore(); // a bad BENCH_WORKERS_CORES stops the run before it starts
  const loadgen: LoadGen = gen === 'auto' ? (wrkInstalled() ? 'wrk' : 'autocannon') : (gen as LoadGen);
  if (loadgen === 'wrk' && !wrkInstalled())
    throw new Error('bench: BENCH_LOADGEN=wrk, but wrk is not installed');
  const seq = Math.round(envNumber('BENCH_SEQ', quick ? 300 : 2000));
  return {
    mode,
    warmup: envNumber('BENCH_WARMUP', quick ? 1 : 3),
    duration: envNumber('BENCH_DURATION', quick ? 3 : 10),
    connections: Math.round(envNumber('BENCH_CONNECTIONS', 50)),
    streams: Math.round(envNumber('BENCH_STREAMS', 1000)),
    seq,
    ttfb: Math.max(100, Math.round(seq / 2)),
    targets: mode === 'profile' ? profileTargets() : targets,
    loadgen,
  };
}

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How tapgate is configured: the shipped config.yaml, with only what the bench must change; with
 * `redisUrl`, its state on that Redis (the tapgate-redis target), otherwise in memory (the shipped default).
 * Usage records are on (the shipped default), in `usageFile` in the run's temp dir; `usageFile`
 * undefined turns them off (the tapgate-nousage target, for the comparison).
 */
function tapgateConfig(
  port: number,
  upstreamPort: number,
  dashboard: string | undefined,
  redisUrl: string | undefined,
  usageFile: string | undefined,
  /** Metrics on (the shipped default), their listener on a free port; false: the tapgate-nometrics target. */
  metrics = true,
  /** 1 but for tapgate-workers2: the proxy under test on one core, its RSS read from one pid. */
  workers = 1,
  /** `proxy.transport`: the shipped default (undici) but for tapgate-hp3. */
  transport: 'undici' | 'http-proxy-3' = 'undici',
): { yaml: string; plugins: string[]; level: string; hold: boolean; holdFrom: string } {
  const shipped = parseYaml(readFileSync(join(ROOT, 'config.yaml'), 'utf8')) as Record<string, unknown>;
  const server = { ...(shipped.server as Record<string, unknown>), host: '127.0.0.1', port, workers };
  const plugins = (shipped.plugins as unknown[]).slice();
  const shippedNames = plugins.map((p) => (typeof p === 'string' ? p : (p as { name: string }).name));
  if (dashboard !== undefined)
    plugins.push({ name: dashboard, options: { path: '/dashboard', token: ADMIN_TOKEN } });
  plugins.push(join(ROOT, 'bench', 'gc-plugin.mjs'));
  const config: Record<string, unknown> = {
    ...shipped,
    server,
    auth: { keys: [{ name: 'bench', key: CLIENT_KEY }] },
    upstreams: [
      {
        name: 'bench-upstream',
        type: 'openai',
        baseUrl: `http://127.0.0.1:${upstreamPort}/v1`,
        apiKey: 'sk-bench-upstream',
        maxConcurrency: MAX_CONCURRENCY,
      },
    ],
    plugins,
  };
  if (redisUrl !== undefined) config.state = { ...(shipped.state as object), store: 'redis', url: redisUrl };
  config.usage =
    usageFile === undefined
      ? { ...(shipped.usage as object), enabled: false }
      : { ...(shipped.usage as object), path: usageFile };
  config.metrics = metrics
    ? { ...(shipped.metrics as object), enabled: true, listen: '127.0.0.1:0' }
    : { ...(shipped.metrics as object), enabled: false };
  if (transport !== 'undici') config.proxy = { ...(shipped.proxy as object), transport };
  const shippedLevel = String((shipped.log as { level?: string } | undefined)?.level ?? 'info');
  const override = process.env.BENCH_LOG_LEVEL;
  const level = override !== undefined && override !== '' ? override : shippedLevel;
  if (level !== shippedLevel) config.log = { ...(shipped.log as object), level };
  const label =
    level === shippedLevel
      ? `${level} (the shipped default)`
      : `${level} (BENCH_LOG_LEVEL; shipped: ${shippedLevel})`;
  const setHold = (shipped.proxy as { hold?: unknown } | undefined)?.hold !== undefined;
  return {
    yaml: stringifyYaml(config),
    plugins: shippedNames,
    level: label,
    hold: holdEnabled(config),
    holdFrom: setHold ? 'set in config.yaml' : "config.yaml leaves it commented out: the schema's default",
  };
}

/**
 * Is the pre-output hold on in this config? The issue's first-byte target is "with the hold on".
 * The shipped config.yaml leaves `proxy.hold` commented out, so the schema's default decides: the
 * schema itself answers, not a copy of its default here.
 */
function holdEnabled(config: Record<string, unknown>): boolean {
  const proxy = configSchema.shape.proxy.parse(config.proxy ?? {});
  return proxy.hold.enabled;
}

/** Is the dashboard plugin there? A built-in name if registered, else its module by path, else none. */
function detectDashboard(): { spec: string | undefined; note: string } {
  if (process.env.BENCH_DASHBOARD === '0')
    return {
      spec: undefined,
      note: 'left out (BENCH_DASHBOARD=0): tapgate ran without the dashboard plugin and viewer',
    };
  const builtins = readFileSync(join(ROOT, 'app', 'builtin-plugins.ts'), 'utf8');
  if (/['"]?dashboard['"]?\s*:/.test(builtins))
    return { spec: 'dashboard', note: 'built-in plugin "dashboard"' };
  for (const f of ['index.ts', 'index.js']) {
    const file = join(ROOT, 'plugins', 'dashboard', f);
    if (existsSync(file))
      return { spec: file, note: `plugins/dashboard/${f} loaded by path (not registered as a built-in)` };
  }
  return {
    spec: undefined,
    note: 'plugin not present (plugins/dashboard missing): tapgate ran without a viewer',
  };
}

interface Viewer {
  messages: number;
  bytes: number;
  close(): void;
}

/** The dashboard viewer: a ws client that reads every message. */
function connectViewer(port: number): Promise<Viewer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/dashboard/ws`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const viewer: Viewer = { messages: 0, bytes: 0, close: () => ws.terminate() };
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no WebSocket open within 5 s'));
    }, 5000);
    ws.on('message', (data: Buffer) => {
      viewer.messages++;
      viewer.bytes += data.length;
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(viewer);
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`upgrade answered ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function nodeArgs(script: string, ...args: string[]): string[] {
  return ['--import', 'tsx', join(ROOT, 'bench', script), ...args];
}

async function getJson<T>(origin: string, path: string): Promise<T> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const a = await request(agent, { origin, path, headers: {} }, '', { method: 'GET' });
    if (a.status !== 200) throw new Error(`GET ${path}: ${a.status} ${a.body.slice(0, 200)}`);
    return JSON.parse(a.body) as T;
  } finally {
    agent.destroy();
  }
}

interface GcAnswer {
  gc: boolean;
  rss: number;
  heapUsed: number;
}

/** The 1,000-open-streams test on a running tapgate. */
/**
 * A GC, a pause, another GC, then VmRSS: a page freed by a GC leaves RSS a moment later (V8 unmaps
 * lazily), so one GC right after a load reads high.
 */
async function settledMemory(origin: string, pid: number): Promise<{ gc: GcAnswer; rss: number }> {
  const first = await getJson<GcAnswer>(origin, '/__bench/gc');
  if (!first.gc) throw new Error('tapgate has no global.gc: was it started with --expose-gc?');
  await sleep(1000);
  const gc = await getJson<GcAnswer>(origin, '/__bench/gc');
  await sleep(200);
  return { gc, rss: rssBytes(pid) };
}

async function memoryTest(
  target: Target,
  child: Child,
  upstreamOrigin: string,
  n: number,
  rssBoot: number,
): Promise<MemoryResult> {
  const { gc: before, rss: rssBefore } = await settledMemory(target.origin, child.pid);
  const streams = openStreams(target, n);
  let opened = n;
  const openedInTime = await Promise.race([streams.opened.then(() => true), sleep(60_000).then(() => false)]);
  const held = Number((await getJson<number>(upstreamOrigin, '/__bench/held')) ?? 0);
  if (!openedInTime) opened = held;
  await sleep(300);
  const rssOpen = rssBytes(child.pid);
  const open = await getJson<GcAnswer>(target.origin, '/__bench/gc');
  log(`memory: ${held} streams held by the upstream, tapgate RSS ${(rssOpen / MB).toFixed(1)} MB`);
  const releaseAgent = new http.Agent({ keepAlive: false });
  await request(releaseAgent, { origin: upstreamOrigin, path: '/__bench/release', headers: {} }, '', {
    method: 'GET',
  });
  releaseAgent.destroy();
  const completed = await Promise.race([streams.ended, sleep(60_000).then(() => -1)]);
  streams.close();
  await sleep(500);
  const { gc: after, rss: rssAfter } = await settledMemory(target.origin, child.pid);
  return {
    streams: n,
    rssBoot,
    opened: Math.min(opened, held),
    completed: Math.max(0, completed),
    rssBefore,
    rssOpen,
    rssAfter,
    heapBefore: before.heapUsed,
    heapOpen: open.heapUsed,
    heapAfter: after.heapUsed,
  };
}

interface Started {
  child: Child | undefined;
  target: Target;
  /** Extra notes on how it ran. */
  notes: string[];
  viewer?: Viewer;
  logFile?: string;
  /** How the dashboard ran in this tapgate (tapgate targets). */
  dashboardNote?: string;
  /** The tapgate-redis target's own Redis, stopped after tapgate. */
  redis?: BenchRedis;
  /** server.workers, when more than one. */
  workers?: number;
}

interface Run {
  opts: Options;
  tmp: string;
  upstreamPort: number;
  upstreamOrigin: string;
  nginx: string | undefined;
  /** The redis-server binary, when installed. */
  redis: string | undefined;
  /** What was found; each tapgate target's Started says how it ran. */
  dashboard: { spec: string | undefined; note: string };
  tapgateInfo: Report['tapgate'];
  /** % of one core used by other processes during 1 s before the run. */
  background?: number;
}

const auth = { authorization: `Bearer ${CLIENT_KEY}` };

async function startTapgate(
  run: Run,
  name:
    | 'tapgate'
    | 'tapgate-nousage'
    | 'tapgate-nometrics'
    | 'tapgate-redis'
    | 'tapgate-workers2'
    | 'tapgate-hp3',
  cpuProfDir: string | undefined,
  redisUrl?: string,
): Promise<Started> {
  const workers = name === 'tapgate-workers2' ? WORKERS2 : 1;
  const port = await freePort();
  const logFile = join(run.tmp, `${name}.stdout.log`);
  const boot = async (dashboard: string | undefined) => {
    const usageFile = name === 'tapgate-nousage' ? undefined : join(run.tmp, `${name}-usage.db`);
    const metrics = name !== 'tapgate-nometrics';
    const transport = name === 'tapgate-hp3' ? 'http-proxy-3' : 'undici';
    const cfg = tapgateConfig(
      port,
      run.upstreamPort,
      dashboard,
      redisUrl,
      usageFile,
      metrics,
      workers,
      transport,
    );
    const file = join(run.tmp, `${name}.yaml`);
    writeFileSync(file, cfg.yaml);
    const args = ['--expose-gc'];
    if (cpuProfDir !== undefined) args.push('--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`);
    args.push(join(ROOT, 'app', 'bin.js'), '--config', file);
    rmSync(logFile, { force: true });
    const child = spawnPinned(name, process.execPath, args, {
      core: workers > 1 ? workersCore() : PROXY_CORE,
      logFile: join(run.tmp, `${name}.stderr.log`),
      stdoutFile: logFile,
      cwd: ROOT,
    });
    run.tapgateInfo.logLevel = cfg.level;
    run.tapgateInfo.plugins = cfg.plugins;
    run.tapgateInfo.hold = cfg.hold;
    run.tapgateInfo.holdFrom = cfg.holdFrom;
    await waitForPort(port, child);
    if (workers > 1) await waitForWorkers(child, port, workers);
    return child;
  };
  const notes: string[] = [];
  let child: Child;
  let dashboard = run.dashboard.spec;
  let note = run.dashboard.note;
  try {
    child = await boot(dashboard);
  } catch (err) {
    if (dashboard === undefined) throw err;
    // The dashboard is someone else's work in progress: measure without it, and say so.
    note = `tapgate did not boot with the dashboard plugin (${String((err as Error).message)
      .split('\n')
      .slice(0, 3)
      .join(' ')}); measured without it`;
    dashboard = undefined;
    child = await boot(undefined);
  }
  const target: Target = { origin: `http://127.0.0.1:${port}`, path: PATH, headers: auth };
  let viewer: Viewer | undefined;
  if (dashboard !== undefined) {
    try {
      viewer = await connectViewer(port);
      note += '; viewer connected to /dashboard/ws';
    } catch (err) {
      note += `; viewer could not connect (${(err as Error).message}): measured without a viewer`;
    }
  }
  // The first tapgate target's is the run's; a later one that ran otherwise says so in its note.
  run.tapgateInfo.dashboard ??= note;
  return {
    child,
    target,
    notes,
    viewer,
    logFile,
    dashboardNote: note,
    ...(workers > 1 ? { workers } : {}),
  };
}

/**
 * The port answers once the first worker listens; the measured load must find every worker there.
 * Each one that listens holds the shared socket (node:cluster, SCHED_NONE): count them in /proc.
 */
async function waitForWorkers(child: Child, port: number, workers: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  let n = listeningWorkers(child.pid, port);
  while (n < workers) {
    if (Date.now() > deadline)
      throw new Error(
        `bench: ${n} of ${workers} tapgate workers listening after 30 s (see ${child.logFile})`,
      );
    await sleep(100);
    n = listeningWorkers(child.pid, port);
  }
}

/** A bench pass-through (bare-proxy.ts, undici-proxy.ts): its own process, pinned like tapgate. */
async function startPassThrough(
  run: Run,
  label: string,
  script: string,
  cpuProfDir: string | undefined,
): Promise<Started> {
  const port = await freePort();
  const child = spawnPinned(
    label,
    process.execPath,
    [
      ...(cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`]),
      ...nodeArgs(script, String(port), run.upstreamOrigin),
    ],
    {
      core: PROXY_CORE,
      logFile: join(run.tmp, `${script.replace(/\.ts$/, '')}.log`),
      stdinPipe: true,
      cwd: ROOT,
    },
  );
  await waitForPort(port, child);
  return { child, target: { origin: `http://127.0.0.1:${port}`, path: PATH, headers: auth }, notes: [] };
}

async function start(name: TargetName, run: Run, cpuProfDir?: string): Promise<Started> {
  switch (name) {
    case 'direct':
      return {
        child: undefined,
        target: { origin: run.upstreamOrigin, path: PATH, headers: auth },
        notes: [],
      };
    case 'bare':
      return startPassThrough(run, LABELS.bare, 'bare-proxy.ts', cpuProfDir);
    case 'undici':
      return startPassThrough(run, LABELS.undici, 'undici-proxy.ts', cpuProfDir);
    case 'tapgate':
    case 'tapgate-nousage':
    case 'tapgate-nometrics':
    case 'tapgate-hp3':
    case 'tapgate-workers2':
      return startTapgate(run, name, cpuProfDir);
    case 'tapgate-redis': {
      if (run.redis === undefined) throw new Error('bench: redis-server is not installed');
      const redis = await startRedis(run.redis, run.tmp);
      try {
        return { ...(await startTapgate(run, name, cpuProfDir, redis.url)), redis };
      } catch (err) {
        await redis.close();
        throw err;
      }
    }
    case 'nginx': {
      const port = await freePort();
      const dir = join(run.tmp, 'nginx');
      const child = spawnPinned('nginx', run.nginx!, nginxArgs(dir, port, run.upstreamPort), {
        core: PROXY_CORE,
        logFile: join(run.tmp, 'nginx.stderr.log'),
      });
      await waitForPort(port, child);
      return { child, target: { origin: `http://127.0.0.1:${port}`, path: PATH, headers: auth }, notes: [] };
    }
  }
}

interface Measured {
  result: LoadResult;
  cpu: number;
  cpuPerReq: number;
  /** CPU µs per request of each process of a cluster, the primary first; undefined for one process. */
  split?: number[];
  other: number;
  served: number;
  /** % of the load core busy meanwhile. */
  loadCore: number;
  redis?: RedisUsage;
}

/** Warm-up, then the measured load, with the proxy's (and its Redis's) CPU use over the measured part. */
async function measure(run: Run, s: Started, stream: boolean): Promise<Measured> {
  const o = run.opts;
  // Each process's JIT warms on the requests it serves: a cluster gets the warm-up once per worker.
  const warm = await runLoad(
    o.loadgen,
    s.target,
    stream,
    { connections: o.connections, seconds: o.warmup * (s.workers ?? 1) },
    run.tmp,
  );
  const settings: LoadSettings = { connections: o.connections, seconds: o.duration };
  const redis0 = await s.redis?.counters();
  const busy0 = coreBusySeconds(LOAD_CORE);
  const cpu0 = s.child === undefined ? 0 : groupCpuSeconds(s.child.pid);
  const snap0 = cpuSnapshot();
  const steal0 = stealSeconds();
  const t0 = performance.now();
  const result = await runLoad(o.loadgen, s.target, stream, settings, run.tmp);
  const wall = (performance.now() - t0) / 1000;
  // Whatever else took CPU meanwhile: other processes, and the hypervisor (steal) on a VM.
  const snap1 = cpuSnapshot();
  const other = (100 * (otherCpuSeconds(snap0, snap1) + stealSeconds() - steal0)) / wall;
  const split = s.child === undefined ? [] : groupCpuSplit(s.child.pid, snap0, snap1);
  const cpuSeconds = s.child === undefined ? Number.NaN : groupCpuSeconds(s.child.pid) - cpu0;
  const loadCore = (100 * (coreBusySeconds(LOAD_CORE) - busy0)) / wall;
  const redis1 = await s.redis?.counters();
  const cpu = (100 * cpuSeconds) / wall;
  // CPU per request holds up better than rps when other work competes for the proxy's core.
  const cpuPerReq = (1e6 * cpuSeconds) / result.requests;
  const bad = result.non2xx + result.errors + result.timeouts + warm.non2xx + warm.errors + warm.timeouts;
  if (bad > 0)
    throw new Error(
      `${stream ? 'SSE' : 'JSON'} load: ${result.non2xx + warm.non2xx} non-2xx, ${result.errors + warm.errors} errors, ${result.timeouts + warm.timeouts} timeouts`,
    );
  return {
    result,
    cpu,
    cpuPerReq,
    split: split.length > 1 ? split.map((sec) => (1e6 * sec) / result.requests) : undefined,
    other,
    served: warm.requests + result.requests,
    loadCore,
    redis:
      redis0 === undefined || redis1 === undefined ? undefined : perRequest(redis0, redis1, result.requests),
  };
}

/** Node processes that answer /__bench/heap/* (tapgate-workers2 would answer from one worker of two). */
const ALLOC_TARGETS: TargetName[] = [
  'bare',
  'undici',
  'tapgate',
  'tapgate-nousage',
  'tapgate-nometrics',
  'tapgate-redis',
  'tapgate-hp3',
];
/** The allocation load's length: long enough for thousands of requests, short enough to stay cheap. */
const ALLOC_SECONDS = 3;

/**
 * Allocated bytes per request: the sampling heap profiler runs in the proxy's process during one
 * short extra load (after the timed ones, which it would slow). Requests still in flight when the
 * load ends are sampled but not counted: at most `connections` of thousands.
 */
async function measureAlloc(run: Run, s: Started, stream: boolean): Promise<HeapAlloc> {
  const o = run.opts;
  const seconds = Math.min(o.duration, ALLOC_SECONDS);
  await getJson(s.target.origin, `${HEAP_START}?interval=${HEAP_INTERVAL}`);
  const r = await runLoad(o.loadgen, s.target, stream, { connections: o.connections, seconds }, run.tmp);
  const sample = await getJson<HeapSample>(s.target.origin, HEAP_STOP);
  if (r.non2xx + r.errors + r.timeouts > 0)
    throw new Error(
      `${stream ? 'SSE' : 'JSON'} allocation load: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`,
    );
  return {
    bytesPerRequest: sample.bytes / r.requests,
    requests: r.requests,
    samples: sample.samples,
    interval: sample.interval,
    rps: r.rps,
  };
}

/**
 * The Redis store's figures count only if tapgate used Redis throughout: it said so at boot and never
 * fell back to its own state (which would measure the memory store under another name).
 */
function checkRedisLog(result: TargetResult, logFile: string | undefined): void {
  if (result.status !== 'ok') return;
  const text = logFile !== undefined && existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  const why = !text.includes('shared state on Redis')
    ? 'tapgate did not log "shared state on Redis" at boot'
    : /Redis (unavailable|unreachable)/.test(text)
      ? 'tapgate lost Redis during the run and served on its own state (see tapgate-redis.stdout.log in the temp dir)'
      : undefined;
  if (why === undefined) return;
  result.status = 'failed';
  result.note = `${why}: the figures are not the Redis store's`;
  log(`${result.label}: FAILED: ${result.note}`);
}

/** With BENCH_WAIT_QUIET=<s>: wait up to that long for the machine's other processes to use < 10% of a core. */
async function waitForQuiet(): Promise<void> {
  const max = Number(process.env.BENCH_WAIT_QUIET ?? 0) * 1000;
  if (!(max > 0)) return;
  const deadline = Date.now() + max;
  do {
    const a = cpuSnapshot();
    const st = stealSeconds();
    await sleep(1000);
    const other = 100 * (otherCpuSeconds(a, cpuSnapshot()) + stealSeconds() - st);
    if (other < 10) return;
    log(`waiting for a quiet machine: other processes use ${other.toFixed(0)}% of a core`);
  } while (Date.now() < deadline);
  log(`still busy after ${max / 1000} s; going on`);
}

async function benchTarget(
  name: TargetName,
  run: Run,
): Promise<{ result: TargetResult; memory?: MemoryResult }> {
  const result: TargetResult = { name, label: LABELS[name], status: 'ok' };
  if (name === 'nginx' && run.nginx === undefined) {
    return { result: { ...result, status: 'skipped', note: 'nginx is not installed' } };
  }
  if (name === 'tapgate-redis' && run.redis === undefined) {
    return { result: { ...result, status: 'skipped', note: 'redis-server is not installed' } };
  }
  await waitForQuiet();
  log(`${LABELS[name]}: starting`);
  let s: Started | undefined;
  let memory: MemoryResult | undefined;
  let served = 0;
  try {
    s = await start(name, run);
    let rssBoot: number | undefined;
    if (name === 'tapgate') rssBoot = (await settledMemory(s.target.origin, s.child!.pid)).rss;
    await validate(s.target);
    const json = await measure(run, s, false);
    log(`${LABELS[name]}: JSON ${json.result.rps.toFixed(0)} rps`);
    const sse = await measure(run, s, true);
    log(`${LABELS[name]}: SSE ${sse.result.rps.toFixed(0)} rps`);
    result.json = json.result;
    result.sse = sse.result;
    if (s.child !== undefined)
      result.cpu = {
        json: json.cpu,
        sse: sse.cpu,
        jsonUsPerReq: json.cpuPerReq,
        sseUsPerReq: sse.cpuPerReq,
        ...(json.split !== undefined && sse.split !== undefined
          ? { split: { json: json.split, sse: sse.split } }
          : {}),
      };
    result.otherCpu = { json: json.other, sse: sse.other };
    if (PINNED) result.loadCore = { json: json.loadCore, sse: sse.loadCore };
    const redis0 = await s.redis?.counters();
    result.seq = await sequential(s.target, false, run.opts.seq, 200, false);
    const redis1 = await s.redis?.counters();
    if (json.redis !== undefined && sse.redis !== undefined) {
      result.redis = { json: json.redis, sse: sse.redis };
      // One request at a time: a client read is one round trip, none of them arriving together.
      if (redis0 !== undefined && redis1 !== undefined)
        result.redis.seq = perRequest(redis0, redis1, run.opts.seq + 200);
    }
    result.ttfb = await sequential(s.target, true, run.opts.ttfb, 100, true);
    served = json.served + sse.served + run.opts.seq + 200 + run.opts.ttfb + 100 + 2;
    if (name === 'tapgate') {
      memory = await memoryTest(s.target, s.child!, run.upstreamOrigin, run.opts.streams, rssBoot!);
      served += run.opts.streams + 3;
    }
    // Last: the profiler's session stays in the process, and must not weigh on the figures above.
    if (ALLOC_TARGETS.includes(name)) {
      const json = await measureAlloc(run, s, false);
      const sse = await measureAlloc(run, s, true);
      result.alloc = { json, sse };
      served += json.requests + sse.requests + 4;
      log(
        `${LABELS[name]}: allocated ${(json.bytesPerRequest / 1024).toFixed(1)} / ${(sse.bytesPerRequest / 1024).toFixed(1)} KB per request (JSON / SSE)`,
      );
    }
  } catch (err) {
    result.status = 'failed';
    result.note = (err as Error).message;
    log(`${LABELS[name]}: FAILED: ${result.note}`);
  } finally {
    if (s?.viewer !== undefined) {
      run.tapgateInfo.viewerMessages = s.viewer.messages;
      run.tapgateInfo.viewerBytes = s.viewer.bytes;
      s.viewer.close();
    }
    if (s?.child !== undefined) {
      // nginx stops at once on SIGTERM; tapgate drains (nothing is in flight by now) and flushes its log.
      await s.child.stop('SIGTERM', 10_000);
    }
    if (s?.redis !== undefined) {
      await s.redis.close();
      checkRedisLog(result, s.logFile);
    }
    const dashboardNote = s?.dashboardNote;
    if (result.status === 'ok' && dashboardNote !== undefined && dashboardNote !== run.tapgateInfo.dashboard)
      result.note = `dashboard: ${dashboardNote}`;
    if (name === 'tapgate' && s?.logFile !== undefined && existsSync(s.logFile)) {
      const text = readFileSync(s.logFile, 'utf8');
      const lines = text.split('\n').filter((l) => l !== '').length;
      run.tapgateInfo.logLines = lines;
      run.tapgateInfo.logBytes = statSync(s.logFile).size;
      if (served > 0) run.tapgateInfo.logBytesPerRequest = Math.round(statSync(s.logFile).size / served);
    }
  }
  return { result, memory };
}

/** The commit measured, and whether the tree had changes outside bench/ (they were measured too). */
function gitState(): string {
  const git = (...args: string[]) =>
    spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const dirty = git('status', '--porcelain', '--', '.', ':!bench') !== '';
  return `${head}${dirty ? ' + uncommitted changes' : ''}`;
}

function machine(): Report['machine'] {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: CORES,
    memoryGB: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()}`,
  };
}

async function startUpstream(tmp: string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnPinned('upstream', process.execPath, nodeArgs('upstream.ts', String(port)), {
    core: LOAD_CORE,
    logFile: join(tmp, 'upstream.log'),
    stdinPipe: true,
    cwd: ROOT,
  });
  await waitForPort(port, child);
  return { child, port };
}

function checkFileLimit(streams: number): void {
  const need = Math.max(4096, 2 * streams + 1024);
  const have = openFileLimit();
  if (have < need) {
    throw new Error(
      `ulimit -n is ${have}; the ${streams}-stream test needs at least ${need} open files per process ` +
        `(tapgate holds a client and an upstream socket per stream). Raise it first: ulimit -n 65536`,
    );
  }
}

function redisHow(run: Run): string {
  const how =
    run.redis === undefined
      ? '(not installed: skipped).'
      : `(${redisVersion(run.redis)}, loopback, --save '' --appendonly no; on core ${LOAD_CORE} with the upstream and the load generator when pinned; stopped after the target); ` +
        'each slot is a lease in Redis taken with one script (the round trip a request waits for) and released after the response.';
  return `tapgate, Redis store: the same tapgate with state: { store: redis, url } on a redis-server the bench starts for it ${how}`;
}

function undiciVersion(): string {
  try {
    const file = createRequire(join(ROOT, 'package.json')).resolve('undici/package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return '(not installed)';
  }
}

/** The first-byte target holds with the pre-output hold on; say how this run had it. */
function holdHow(run: Run): string {
  const hold = run.tapgateInfo.hold;
  if (hold === undefined) return 'proxy.hold not read';
  const from = String(run.tapgateInfo.holdFrom ?? '');
  return hold === true
    ? `proxy.hold on (${from}), as the first-byte target asks`
    : `proxy.hold OFF (${from}): the first-byte target is set with it on`;
}

function howRun(run: Run, loadgenVersion: string): string[] {
  const o = run.opts;
  const pin = PINNED
    ? `pinned with taskset: the proxy under test on core ${PROXY_CORE}; the load generator, the runner, the upstream and Redis on core ${LOAD_CORE}`
    : HAS_TASKSET
      ? `not pinned: only ${CORES} core(s)`
      : 'not pinned: taskset is not installed';
  const m = machine();
  return [
    `Command: npm run bench${o.mode === 'full' ? '' : ` -- --${o.mode}`} at commit ${gitState()}; Node ${m.node}, ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, ${m.os}.`,
    `CPU: ${pin}. Each proxy is its own child process, measured one at a time against the same upstream.`,
    `Load: ${loadgenVersion}, ${o.connections} connections, ${o.warmup} s warm-up then ${o.duration} s measured, per target and per kind; ` +
      `POST ${PATH} {"model":"gpt-bench","input":"hi","stream":…} with Authorization: Bearer <client key>.`,
    `Upstream: Node http on 127.0.0.1; stream:false → ${'1 KB'} JSON; stream:true → 40 SSE events (response.created … response.completed), one write each.`,
    `Low load: ${o.seq} sequential JSON requests (after 200 unmeasured) and ${o.ttfb} sequential SSE requests for time to first byte, one keep-alive connection, the bench's own timer.`,
    `tapgate: node --expose-gc app/bin.js --config <temp yaml>: the shipped config.yaml with client auth on (one key), server.workers 1, ` +
      `one openai upstream at the bench upstream with maxConcurrency ${MAX_CONCURRENCY} (never reached, but every request takes a slot), ` +
      `plugins ${(run.tapgateInfo.plugins as string[] | undefined)?.join(', ') ?? '(shipped)'} + bench/gc-plugin.mjs; log.level ${String(run.tapgateInfo.logLevel ?? 'info')}, to a file; ` +
      `state.store memory (the shipped default); ${holdHow(run)}. No session key is sent.`,
    ...(o.targets.includes('tapgate-redis') ? [redisHow(run)] : []),
    ...(o.targets.includes('tapgate-workers2')
      ? [
          `tapgate, workers: 2: the same tapgate with server.workers ${WORKERS2} (node:cluster), the primary and both workers ${workersCore() === 'all' ? 'on every core (BENCH_WORKERS_CORES=all)' : `on core ${PROXY_CORE}`}; ` +
            `measured once both workers hold the listening socket, after ${WORKERS2}× the warm-up (each worker's JIT warms on its share); its CPU is the whole process group (primary + workers) from /proc.`,
        ]
      : []),
    `Dashboard: ${String(run.tapgateInfo.dashboard ?? run.dashboard.note)}.`,
    `Background: other processes and hypervisor steal took ${(run.background ?? 0).toFixed(0)}% of a core in the second before the run (see "other CPU").`,
    `bare http-proxy-3: bench/bare-proxy.ts, a keep-alive agent like tapgate's, no logic. ` +
      `Minimal undici proxy: bench/undici-proxy.ts, undici ${undiciVersion()} Agent.dispatch with a handler (keep-alive, pipelining 1), hop-by-hop headers dropped, no logic. nginx: ${run.nginx === undefined ? 'not installed' : `${nginxVersion(run.nginx)}, 1 worker, upstream keepalive, proxy_buffering off, no access log`}.`,
  ];
}

/** The monotonic clock in µs: the clock of V8's CPU profiles (CLOCK_MONOTONIC on Linux), in every process. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * `--profile`: each profiled target (tapgate; with BENCH_TARGETS, bare too) alone under the JSON
 * then the SSE load, with node --cpu-prof; the profile is cut to each measured window.
 */
async function profile(run: Run): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  const o = run.opts;
  const text: string[] = [];
  const md: string[] = [
    '# CPU profiles under load',
    '',
    `Written by \`npm run bench -- --profile\` on ${new Date().toISOString()} at commit ${gitState()}: node --cpu-prof on the proxy's process, ` +
      `${o.connections} connections, ${o.duration} s measured after ${o.warmup} s warm-up, ${o.loadgen}; each table covers one measured window. ` +
      `The profiler slows the process down: the split, not the rate, is the point. Percentages are of busy (not idle) time.`,
    '',
  ];
  for (const name of o.targets) {
    const dir = join(run.tmp, `prof-${name}`);
    const file = join(RESULTS, `${name}.cpuprofile`);
    rmSync(file, { force: true });
    log(`${LABELS[name]}: profiling`);
    const s = await start(name, run, dir);
    try {
      await validate(s.target);
      const windows: {
        kind: string;
        from: number;
        to: number;
        rps: number;
        requests: number;
        other: number;
      }[] = [];
      for (const stream of [false, true]) {
        await runLoad(
          o.loadgen,
          s.target,
          stream,
          { connections: o.connections, seconds: o.warmup },
          run.tmp,
        );
        const snap0 = cpuSnapshot();
        const steal0 = stealSeconds();
        const from = nowUs();
        const r = await runLoad(
          o.loadgen,
          s.target,
          stream,
          { connections: o.connections, seconds: o.duration },
          run.tmp,
        );
        const to = nowUs();
        const other = otherCpuSeconds(snap0, cpuSnapshot()) + stealSeconds() - steal0;
        windows.push({
          kind: stream ? 'SSE' : 'JSON',
          from,
          to,
          rps: r.rps,
          requests: r.requests,
          other: (100 * other * 1e6) / (to - from),
        });
      }
      s.viewer?.close();
      await s.child!.stop('SIGTERM', 15_000);
      // Default names: CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile. One per thread (tsx's loader
      // hooks run on a thread of their own); the main thread's tid is 0.
      const found = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
      const main = found.find((f) => f.split('.')[4] === '0');
      if (main === undefined)
        throw new Error(`no main-thread profile written in ${dir} (found: ${found.join(', ') || 'none'})`);
      copyFileSync(join(dir, main), file); // /tmp may be another filesystem
      for (const w of windows) {
        const summary = summariseProfile(file, w.from, w.to);
        const title = `${LABELS[name]}, ${w.kind} load: ${w.rps.toFixed(0)} rps while profiled (other CPU ${w.other.toFixed(0)}%)`;
        const header = [
          `Profile: bench/results/${name}.cpuprofile (not tracked; Chrome DevTools or speedscope).`,
        ];
        if (s.dashboardNote !== undefined) header.push(`Dashboard: ${s.dashboardNote}.`);
        text.push(renderProfile(summary, false, title, header, w.requests));
        md.push(renderProfile(summary, true, title, header, w.requests));
      }
    } finally {
      s.viewer?.close();
      await s.child?.stop('SIGKILL', 1000);
      await s.redis?.close();
    }
  }
  process.stdout.write('\n' + text.join('\n'));
  writeFileSync(join(RESULTS, 'profile.md'), md.join('\n'));
  log(
    `wrote bench/results/profile.md and ${o.targets.map((t) => `bench/results/${t}.cpuprofile`).join(', ')}`,
  );
}

async function main(): Promise<number> {
  const opts = options();
  if (process.platform !== 'linux') throw new Error('bench: Linux only (it reads /proc for RSS and CPU)');
  checkFileLimit(opts.streams);
  pinSelf(LOAD_CORE);
  const tmp = mkdtempSync(join(os.tmpdir(), 'tapgate-bench-'));
  let ok = false;
  try {
    const upstream = await startUpstream(tmp);
    const nginx = findNginx();
    const run: Run = {
      opts,
      tmp,
      upstreamPort: upstream.port,
      upstreamOrigin: `http://127.0.0.1:${upstream.port}`,
      nginx,
      redis: findRedis(),
      dashboard: detectDashboard(),
      tapgateInfo: {},
    };
    const loadgenVersion =
      opts.loadgen === 'wrk'
        ? `${wrkVersion()} (1 thread)`
        : `autocannon ${(JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version} (in the runner's process)`;
    log(`mode ${opts.mode}; load ${loadgenVersion}; ${PINNED ? 'pinned' : 'not pinned'}; temp dir ${tmp}`);
    log(`dashboard: ${run.dashboard.note}`);
    const quiet0 = cpuSnapshot();
    const steal0 = stealSeconds();
    await sleep(1000);
    run.background = 100 * (otherCpuSeconds(quiet0, cpuSnapshot()) + stealSeconds() - steal0);
    if (run.background > 10)
      log(
        `WARNING: other processes use ${run.background.toFixed(0)}% of a core right now: the figures will be skewed`,
      );

    if (opts.mode === 'profile') {
      await profile(run);
      ok = true;
      return 0;
    }

    const targets: TargetResult[] = [];
    let memory: MemoryResult | null = null;
    for (const name of opts.targets) {
      const r = await benchTarget(name, run);
      targets.push(r.result);
      if (r.memory !== undefined) memory = r.memory;
    }
    const derived = computeRatios(targets);
    const report: Report = {
      tool: 'tapgate bench',
      date: new Date().toISOString(),
      mode: opts.mode,
      command: `npm run bench${opts.mode === 'quick' ? ' -- --quick' : ''}`,
      machine: machine(),
      howRun: howRun(run, loadgenVersion),
      settings: {
        loadgen: opts.loadgen,
        connections: opts.connections,
        warmupSeconds: opts.warmup,
        durationSeconds: opts.duration,
        sequentialRequests: opts.seq,
        firstByteRequests: opts.ttfb,
        streams: opts.streams,
        pinned: PINNED ? `proxy core ${PROXY_CORE}, load+upstream core ${LOAD_CORE}` : 'no',
      },
      tapgate: run.tapgateInfo,
      targets,
      ...derived,
      memory,
      checks: [],
    };
    report.checks = computeChecks(report);
    if (typeof run.tapgateInfo.logLines === 'number') {
      report.howRun.push(
        `tapgate log volume: ${run.tapgateInfo.logLines} lines, ${((run.tapgateInfo.logBytes as number) / MB).toFixed(1)} MB, ` +
          `~${String(run.tapgateInfo.logBytesPerRequest ?? '?')} bytes per request.`,
      );
    }
    if (typeof run.tapgateInfo.viewerMessages === 'number') {
      report.howRun.push(
        `Dashboard viewer read ${run.tapgateInfo.viewerMessages} messages (${((run.tapgateInfo.viewerBytes as number) / 1024).toFixed(0)} KB).`,
      );
    }

    process.stdout.write(renderConsole(report));
    mkdirSync(RESULTS, { recursive: true });
    const base = opts.mode === 'quick' ? ['quick.json.tmp', 'quick.md.tmp'] : ['latest.json', 'latest.md'];
    writeFileSync(join(RESULTS, base[0]!), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(RESULTS, base[1]!), renderMarkdown(report));
    log(`wrote ${base.map((b) => relative(ROOT, join(RESULTS, b))).join(' and ')}`);
    ok = targets.every((t) => t.status !== 'failed');
    return ok ? 0 : 1;
  } finally {
    await stopAll();
    if (ok && process.env.BENCH_KEEP_TMP !== '1') rmSync(tmp, { recursive: true, force: true });
    else log(`temp dir kept: ${tmp}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
