/**
 * The soak: a real gateway in this process, in front of the soak's fault upstream (16 accounts on
 * one loopback server), under a bounded mixed load — streams and JSON on every Responses route, a
 * share of upstream faults and of clients that hang up — for a set time. Then: memory after a GC
 * against the warm start, the gateway's in-flight requests, slots, queue and sockets once the load
 * has stopped, and the process's handles once everything is closed, against before it started.
 *
 * In-process, so the gateway's own counters are at hand. The load generator and the upstream run
 * here too: their memory is in the RSS (steady: the clients keep counters, not answers), and their
 * handles are closed before the final handle count, which is compared with the count taken before
 * anything started, so any handle left over is the gateway's.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Writable } from 'node:stream';
import YAML from 'yaml';
import { parseConfig } from '../../core/config/config.js';
import type { Gateway } from '../../core/gateway.js';
import { until } from '../../test/helpers/pool.js';
import { runRequest, type ClientDeps, type Result } from './client.js';
import { startFaultUpstream, type FaultUpstream } from './fault-upstream.js';
import { expected, Planner, type Mix, type Plan } from './plan.js';
import { extraHandles, gcFunction, handles, memoryAfterGc, type Handles, type Memory } from './probe.js';
import { Rendezvous } from './rendezvous.js';
import { createGateway } from '../../app/gateway.js';

export interface SoakOptions extends Mix {
  durationMs: number;
  /** Load before the start figures are taken (JIT, pools and buffers warm). */
  warmupMs: number;
  /** Clients sending at once, each one request after another. */
  concurrency: number;
  seed: number;
  /** Accounts on the fault upstream: enough that a Retry-After on a few never leaves a request without one. */
  accounts: number;
  /** The gateway's idle timeout: how long a stall lasts. */
  idleTimeoutMs: number;
  /**
   * Requests started per second, at most, over all clients. Cooldowns are counted in seconds: at an
   * unbounded rate, the faults would keep every account of a model cooling, and the failover the
   * soak checks for would have nowhere to go.
   */
  rate: number;
  /** Called with a status line now and then. */
  progress?: (line: string) => void;
}

export const DEFAULTS: Omit<SoakOptions, 'durationMs'> = {
  warmupMs: 5000,
  concurrency: 40,
  faultRate: 0.1,
  abortRate: 0.05,
  seed: 7,
  accounts: 16,
  idleTimeoutMs: 400,
  rate: 600,
};

/** What the gateway holds once the load has stopped; every figure should be 0. */
export interface Leftovers {
  inflight: number;
  slots: number;
  queued: number;
  /** Client connections the gateway still has after every client closed its sockets. */
  clientConnections: number;
  /** Upstream sockets still in use (not idle in the keep-alive pool). */
  upstreamSocketsInUse: number;
  /** Upstream responses still open. */
  upstreamOpen: number;
  /** Held upstream responses the gateway never closed (see fault-upstream.ts). */
  uncancelled: number;
  /** Client/upstream meeting points not cleared: a request whose ending was never seen. */
  rendezvous: number;
}

/** The most the gateway held at once during the load, sampled. */
export interface Peaks {
  inflight: number;
  slots: number;
  queued: number;
}

export interface SoakReport {
  options: SoakOptions;
  /** Measured phase only (after warm-up). */
  seconds: number;
  requests: number;
  warmupRequests: number;
  /** Client-visible endings, by name (see client.ts). */
  outcomes: Record<string, number>;
  /** Endings that are not a terminal answer: each a failure. */
  bad: Record<string, number>;
  /** `planned → got` when the answer differs from what the plan must give. */
  unexpected: Record<string, number>;
  /** Faults the upstream actually injected, by kind. */
  injected: Record<string, number>;
  memory: { start: Memory; end: Memory };
  leftovers: Leftovers;
  peaks: Peaks;
  handles: { before: Handles; running: Handles; leaked: Handles };
  secretLeaks: number;
  logLines: number;
}

/** Counts a request's ending against its plan. */
class Tally {
  requests = 0;
  readonly outcomes = new Map<string, number>();
  readonly bad = new Map<string, number>();
  readonly unexpected = new Map<string, number>();
  leaks = 0;

  add(plan: Plan, r: Result): void {
    this.requests++;
    bump(this.outcomes, r.outcome === 'bad' ? 'bad ending' : r.outcome);
    if (r.bad !== undefined) bump(this.bad, r.bad);
    if (r.leak === true) this.leaks++;
    const want = expected(plan);
    if (r.outcome !== want && r.outcome !== 'bad' && !allCooling(want, r.outcome))
      bump(
        this.unexpected,
        `${plan.abort ?? plan.fault} (${plan.stream ? 'stream' : plan.method === 'GET' ? 'GET' : 'JSON'}): ${want} → ${r.outcome}`,
      );
  }
}

/**
 * Every account cooling on a Retry-After at once gives a request the gateway's own 429: a correct
 * answer, not a fault of the gateway, if rare with enough accounts.
 */
function allCooling(want: string, got: string): boolean {
  return want === 'ok' && got === 'HTTP 429 rate_limit_exceeded';
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

/** Where the gateway's log lines go: counted and checked for secrets, not kept. */
class LogSink extends Writable {
  lines = 0;
  leaks = 0;
  constructor(private readonly secrets: readonly string[]) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    const text = chunk.toString();
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.lines++;
    if (this.secrets.some((s) => text.includes(s))) this.leaks++;
    cb();
  }
}

function gatewayYaml(upstreamUrl: string, keys: string[], o: SoakOptions): string {
  // Slots a little short of the clients, so the wait queue is used too.
  const perAccount = Math.max(1, Math.ceil((o.concurrency * 0.8) / o.accounts));
  return YAML.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { keys: [{ name: 'soak', key: '${SOAK_CLIENT_KEY}' }] },
    log: { level: 'warn' },
    proxy: {
      maxAttempts: 3,
      transientCooldown: '2s',
      timeouts: { connect: '2s', firstByte: '5s', idle: o.idleTimeoutMs },
    },
    upstreams: keys.map((apiKey, i) => ({
      name: `acct-${i + 1}`,
      type: 'openai',
      baseUrl: `${upstreamUrl}/v1`,
      apiKey,
      maxConcurrency: perAccount,
    })),
    plugins: ['responses-routes', 'request-id', 'error-codes'],
  });
}

function slotsInUse(gw: Gateway): number {
  return gw.pool.upstreams.reduce((n, u) => n + gw.pool.state.inFlight(u.name), 0);
}

function upstreamSocketsInUse(gw: Gateway): number {
  let n = 0;
  for (const u of gw.pool.upstreams) n += u.connections.busy;
  return n;
}

function gatewayConnections(gw: Gateway): Promise<number> {
  return new Promise((resolve, reject) =>
    gw.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** How often the gateway's in-flight requests, slots and queue are sampled for the peaks. */
const SAMPLE_EVERY_MS = 50;

/** Runs `concurrency` clients, each sending one planned request after another, for `ms`. */
async function drive(
  ms: number,
  o: SoakOptions,
  planner: Planner,
  deps: ClientDeps,
  tally: Tally,
  gw: Gateway,
  peaks: Peaks,
): Promise<void> {
  const end = performance.now() + ms;
  const interval = 1000 / o.rate;
  let nextStart = performance.now();
  /** Resolves at this client's turn to start a request: the clients share one schedule. */
  const turn = () => {
    const now = performance.now();
    nextStart = Math.max(now, nextStart + interval);
    const wait = nextStart - now;
    return wait < 1 ? Promise.resolve() : new Promise<void>((r) => setTimeout(r, wait));
  };
  const client = async () => {
    while (performance.now() < end) {
      await turn();
      const plan = planner.next();
      tally.add(plan, await runRequest(plan, deps));
    }
  };
  const sampler = setInterval(() => {
    peaks.inflight = Math.max(peaks.inflight, gw.inflight);
    peaks.slots = Math.max(peaks.slots, slotsInUse(gw));
    peaks.queued = Math.max(peaks.queued, gw.pool.queue.length);
  }, SAMPLE_EVERY_MS);
  try {
    await Promise.all(Array.from({ length: o.concurrency }, client));
  } finally {
    clearInterval(sampler);
  }
}

const obj = (m: Map<string, number>): Record<string, number> =>
  Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const gc = gcFunction();
  const say = o.progress ?? (() => undefined);
  // One turn of the event loop first, so that what the caller set up right after calling (mocha
  // arms its timeout timer once the hook has returned its promise) is in the baseline too.
  await new Promise((r) => setImmediate(r));
  const before = handles();
  const clientKey = `sk-soak-client-${randomBytes(12).toString('hex')}`;
  const upstreamKeys = Array.from(
    { length: o.accounts },
    () => `sk-soak-upstream-${randomBytes(12).toString('hex')}`,
  );
  const secrets = [clientKey, ...upstreamKeys];
  const meet = new Rendezvous();
  const sink = new LogSink(secrets);

  let upstream: FaultUpstream | undefined;
  let gw: Gateway | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  try {
    upstream = await startFaultUpstream(meet);
    const loaded = parseConfig(gatewayYaml(upstream.url, upstreamKeys, o), 'soak.yaml', {
      SOAK_CLIENT_KEY: clientKey,
    });
    gw = await createGateway(loaded, { logDestination: sink });
    await gw.listen();
    const deps: ClientDeps = { origin: gw.url, key: clientKey, agent, meet, secrets };
    const planner = new Planner(o, o.seed);
    const peaks: Peaks = { inflight: 0, slots: 0, queued: 0 };
    const g = gw;
    // Once the load stops the gateway must go idle; if it does not, the figures below say how not.
    const quiet = () =>
      until(() => g.inflight === 0 && slotsInUse(g) === 0, 'idle', 10_000).catch(() => undefined);

    say(`warm-up: ${o.warmupMs / 1000}s, ${o.concurrency} clients`);
    const warm = new Tally();
    await drive(o.warmupMs, o, planner, deps, warm, g, peaks);
    await quiet();
    const start = memoryAfterGc(gc);
    say(`start: rss ${mb(start.rss)} MB, heap ${mb(start.heapUsed)} MB after GC`);

    const tally = new Tally();
    const t0 = performance.now();
    const ticker = setInterval(() => {
      const s = Math.round((performance.now() - t0) / 1000);
      say(
        `${s}s: ${tally.requests} requests, ${g.inflight} in flight, rss ${mb(process.memoryUsage().rss)} MB`,
      );
    }, 10_000);
    try {
      await drive(o.durationMs, o, planner, deps, tally, g, peaks);
    } finally {
      clearInterval(ticker);
    }
    const seconds = (performance.now() - t0) / 1000;
    await quiet();
    const end = memoryAfterGc(gc);

    // Clients hang up their idle keep-alive sockets: the gateway must then hold no connection.
    agent.destroy();
    await until(() => upstream!.open === 0, 'upstream responses closed', 5000).catch(() => undefined);
    let clientConnections = await gatewayConnections(g);
    for (const t = performance.now() + 2000; clientConnections > 0 && performance.now() < t;) {
      await new Promise((r) => setTimeout(r, 20));
      clientConnections = await gatewayConnections(g);
    }
    const leftovers: Leftovers = {
      inflight: g.inflight,
      slots: slotsInUse(g),
      queued: g.pool.queue.length,
      clientConnections,
      upstreamSocketsInUse: upstreamSocketsInUse(g),
      upstreamOpen: upstream.open,
      uncancelled: upstream.uncancelled,
      rendezvous: meet.size,
    };
    const running = handles();
    const injected = Object.fromEntries([...upstream.injected].sort());

    await gw.close(0);
    gw = undefined;
    await upstream.close();
    upstream = undefined;
    // Sockets close a tick or two after their close() call: wait (bounded) for the count to settle.
    let leaked = extraHandles(before, handles());
    for (const t = performance.now() + 3000; Object.keys(leaked).length > 0 && performance.now() < t;) {
      await new Promise((r) => setTimeout(r, 20));
      leaked = extraHandles(before, handles());
    }

    return {
      options: o,
      seconds,
      requests: tally.requests,
      warmupRequests: warm.requests,
      outcomes: obj(merge(warm.outcomes, tally.outcomes)),
      bad: obj(merge(warm.bad, tally.bad)),
      unexpected: obj(merge(warm.unexpected, tally.unexpected)),
      injected,
      memory: { start, end },
      leftovers,
      peaks,
      handles: { before, running, leaked },
      secretLeaks: sink.leaks + tally.leaks + warm.leaks,
      logLines: sink.lines,
    };
  } finally {
    agent.destroy();
    await gw?.close(0);
    await upstream?.close();
  }
}

function merge(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map(a);
  for (const [k, v] of b) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

export const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);
