/**
 * What the dashboard knows, gathered from the lifecycle hooks at O(1) per event: a ring of recent
 * requests with their lifecycle events, per-second points for the last 15 minutes, totals, and
 * per-upstream counters for the last 5 minutes. Nothing here serialises or talks to viewers: the
 * feed reads it once per batch.
 */
import {
  createStateKey,
  type GatewayError,
  type Outcome,
  type RequestContext,
  type Secrets,
  type SseEvent,
  type Upstream,
  type UpstreamResponseHead,
} from '../../core/index.js';

export type RequestState = 'active' | 'ok' | 'error' | 'aborted';
export type EventKind = 'start' | 'attempt' | 'response' | 'first_byte' | 'failover' | 'terminal' | 'finish';

/** One lifecycle event of a request; `t` is ms since the request started. */
export interface WireEvent {
  t: number;
  kind: EventKind;
  detail: string;
}

export interface WireError {
  code: string | null;
  message: string;
}

export interface WireRequest {
  id: string;
  time: number;
  route: string | null;
  model: string | null;
  client: string | null;
  upstream: string | null;
  attempts: number;
  status: number | null;
  state: RequestState;
  ttfbMs: number | null;
  durationMs: number | null;
  tokensIn: number | null;
  tokensOut: number | null;
  error: WireError | null;
  events: WireEvent[];
}

export interface WirePoint {
  /** Start of the second, epoch ms. */
  t: number;
  /** Requests finished in that second. */
  rps: number;
  errorRate: number;
  p50: number | null;
  p95: number | null;
  ttfb50: number | null;
  ttfb95: number | null;
}

export interface WireTotals {
  requests: number;
  errors: number;
  inflight: number;
  tokensIn: number;
  tokensOut: number;
  startedAt: number;
}

/** Counters of one upstream over the last 5 minutes, plus its last error. */
export interface UpstreamCounters {
  requests5m: number;
  errors5m: number;
  lastError: { time: number; message: string } | null;
}

/** Where the collector keeps a request's record (set in `onStart`; none for ignored paths). */
const RECORD = createStateKey<RequestRecord | undefined>('dashboard.record', () => undefined);

const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);
/** Request faults: the same request fails on any account, so they do not count against one. */
const REQUEST_FAULT_STATUS = new Set([400, 404, 413, 415, 422]);
/** Events kept per request; `finish` always fits (a request has at most 20 attempts of 3 events). */
const MAX_EVENTS = 72;
const MAX_MESSAGE = 300;
const MAX_FIELD = 128;
/** Seconds of points kept (15 minutes) and seconds of upstream counters (5 minutes). */
export const SERIES_SECONDS = 900;
const WINDOW_SECONDS = 300;
/** Latency samples kept per second (reservoir): exact percentiles below it, unbiased above. */
const RESERVOIR = 256;

const round1 = (n: number): number => Math.round(n * 10) / 10;

export class RequestRecord {
  route: string | null = null;
  model: string | null = null;
  client: string | null = null;
  upstream: string | null = null;
  attempts = 0;
  status: number | null = null;
  state: RequestState = 'active';
  ttfbMs: number | null = null;
  durationMs: number | null = null;
  tokensIn: number | null = null;
  tokensOut: number | null = null;
  error: WireError | null = null;
  readonly events: WireEvent[] = [];
  /** Queued for the next delta. */
  dirty = false;
  /** An attempt failed; shown as `failover` when another attempt follows. */
  pendingFailover: WireEvent | undefined = undefined;
  /** The attempt whose failure was already counted against its upstream. */
  countedAttempt = 0;
  /** The last attempt that reached `upstreamAttempt` (one that failed while being prepared did not). */
  sentAttempt = 0;

  constructor(
    /** Arrival order, for newest-first sorting. */
    readonly seq: number,
    readonly id: string,
    /** Date.now() at arrival. */
    readonly time: number,
    /** performance.now() at arrival. */
    readonly t0: number,
  ) {}

  event(kind: EventKind, detail: string, now = performance.now()): void {
    const events = this.events;
    if (events.length >= MAX_EVENTS - 1 && kind !== 'finish') return;
    events.push({ t: Math.max(0, Math.round(now - this.t0)), kind, detail });
  }

  toJSON(): WireRequest {
    return {
      id: this.id,
      time: this.time,
      route: this.route,
      model: this.model,
      client: this.client,
      upstream: this.upstream,
      attempts: this.attempts,
      status: this.status,
      state: this.state,
      ttfbMs: this.ttfbMs,
      durationMs: this.durationMs,
      tokensIn: this.tokensIn,
      tokensOut: this.tokensOut,
      error: this.error,
      events: this.events,
    };
  }
}

/** Reservoir of samples for one second: bounded memory, percentiles computed once when it closes. */
class Reservoir {
  private readonly samples = new Float64Array(RESERVOIR);
  private seen = 0;

  add(v: number): void {
    const n = ++this.seen;
    if (n <= RESERVOIR) this.samples[n - 1] = v;
    else {
      const j = Math.floor(Math.random() * n);
      if (j < RESERVOIR) this.samples[j] = v;
    }
  }

  /** [p50, p95] (nearest rank), or nulls without samples; then empties the reservoir. */
  take(): [number | null, number | null] {
    const n = Math.min(this.seen, RESERVOIR);
    this.seen = 0;
    if (n === 0) return [null, null];
    const sorted = this.samples.slice(0, n).sort();
    const at = (q: number) => round1(sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!);
    return [at(0.5), at(0.95)];
  }
}

/** Per-second counters of one upstream in a ring of 300 slots. */
class UpstreamWindow {
  private readonly requests = new Uint32Array(WINDOW_SECONDS);
  private readonly errors = new Uint32Array(WINDOW_SECONDS);
  private readonly stamps = new Float64Array(WINDOW_SECONDS).fill(-1);
  lastError: { time: number; message: string } | null = null;

  private slot(sec: number): number {
    const i = sec % WINDOW_SECONDS;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.requests[i] = 0;
      this.errors[i] = 0;
    }
    return i;
  }

  hit(sec: number): void {
    this.requests[this.slot(sec)]!++;
  }

  fail(sec: number): void {
    this.errors[this.slot(sec)]!++;
  }

  sums(nowSec: number): [number, number] {
    let r = 0;
    let e = 0;
    const from = nowSec - WINDOW_SECONDS;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      const s = this.stamps[i]!;
      if (s > from && s <= nowSec) {
        r += this.requests[i]!;
        e += this.errors[i]!;
      }
    }
    return [r, e];
  }
}

export interface CollectorOptions {
  /** Requests kept for the snapshot. */
  recent: number;
  secrets: Secrets;
  /** Paths not to record (the dashboard's own requests). */
  ignore(pathname: string): boolean;
}

export class Collector {
  readonly startedAt = Date.now();
  private seq = 0;
  private readonly ring: (RequestRecord | undefined)[];
  private head = 0;
  private stored = 0;

  /** Set by the feed while anyone watches; without viewers nothing is queued for deltas. */
  private tracking = false;
  private dirty: RequestRecord[] = [];

  private requests = 0;
  private errors = 0;
  private active = 0;
  private tokensIn = 0;
  private tokensOut = 0;

  // The second being filled, and the points of the seconds before it.
  private second: number;
  private count = 0;
  private failed = 0;
  private readonly latency = new Reservoir();
  private readonly ttfb = new Reservoir();
  private points: WirePoint[] = [];
  /** Points closed since the feed last took them. */
  private pending = 0;

  private readonly windows = new Map<string, UpstreamWindow>();

  constructor(private readonly opts: CollectorOptions) {
    this.ring = new Array<RequestRecord | undefined>(opts.recent);
    this.second = Math.floor(Date.now() / 1000) * 1000;
  }

  // --- hook taps --------------------------------------------------------------------------

  onStart(ctx: RequestContext): void {
    if (this.opts.ignore(ctx.pathname)) return;
    const r = new RequestRecord(
      ++this.seq,
      this.opts.secrets.clip(ctx.id, MAX_FIELD),
      ctx.receivedAt,
      ctx.startedAt,
    );
    ctx.setState(RECORD, r);
    r.event('start', `${ctx.method} ${this.opts.secrets.clip(ctx.pathname, MAX_FIELD)}`);
    this.ring[this.head] = r;
    this.head = (this.head + 1) % this.ring.length;
    if (this.stored < this.ring.length) this.stored++;
    this.requests++;
    this.active++;
    this.touch(r);
  }

  onAttempt(ctx: RequestContext, upstream: Upstream): void {
    const r = record(ctx);
    if (r === undefined) return;
    this.sync(r, ctx);
    const now = performance.now();
    if (r.pendingFailover !== undefined) {
      if (r.events.length < MAX_EVENTS - 1) r.events.push(r.pendingFailover);
      r.pendingFailover = undefined;
    }
    r.event('attempt', `#${ctx.attempts} ${upstream.name}`, now);
    r.sentAttempt = ctx.attempts;
    this.window(upstream.name).hit(Math.floor(Date.now() / 1000));
    this.touch(r);
  }

  onResponse(ctx: RequestContext, upstream: Upstream, response: UpstreamResponseHead): void {
    const r = record(ctx);
    if (r === undefined) return;
    r.event('response', `${upstream.name} ${response.statusCode ?? 0}`);
    this.touch(r);
  }

  onFirstByte(ctx: RequestContext): void {
    const r = record(ctx);
    if (r === undefined || ctx.firstByteAt === undefined) return;
    r.ttfbMs = round1(ctx.firstByteAt - ctx.startedAt);
    r.event('first_byte', '', ctx.firstByteAt);
    this.touch(r);
  }

  /** A terminal event, for the timeline: nothing is parsed (tokens come from `ctx.usage` at finish). */
  onStreamEvent(ev: SseEvent, ctx: RequestContext): void {
    if (ev.fail !== undefined || ev.drop === true || ev.terminal !== true) return;
    const r = record(ctx);
    if (r === undefined) return;
    r.event('terminal', ev.event !== undefined && TERMINAL.has(ev.event) ? ev.event : 'terminal');
    this.touch(r);
  }

  /** An attempt failed before the client got a response (observed from `attemptFailed`). */
  onAttemptError(ctx: RequestContext, upstream: Upstream, error: GatewayError): void {
    const r = record(ctx);
    if (r === undefined) return;
    const code = error.errorCode ?? error.code;
    r.pendingFailover = {
      t: Math.max(0, Math.round(performance.now() - r.t0)),
      kind: 'failover',
      detail: `${upstream.name} ${this.opts.secrets.clip(code, MAX_FIELD)}`,
    };
    r.countedAttempt = ctx.attempts;
    // Failed while being prepared (e.g. a credential refresh): an attempt all the same.
    if (r.sentAttempt !== ctx.attempts) this.window(upstream.name).hit(Math.floor(Date.now() / 1000));
    if (!REQUEST_FAULT_STATUS.has(error.status)) this.upstreamFailed(upstream.name, error);
    this.touch(r);
  }

  onFinish(ctx: RequestContext, outcome: Outcome): void {
    const r = record(ctx);
    if (r === undefined) return;
    this.sync(r, ctx);
    r.pendingFailover = undefined;
    r.durationMs = round1(outcome.durationMs);
    r.status = outcome.status;
    const usage = ctx.usage;
    if (usage !== undefined) {
      r.tokensIn = usage.input;
      r.tokensOut = usage.output;
      this.tokensIn += usage.input;
      this.tokensOut += usage.output;
    }
    const error = outcome.error;
    if (error !== undefined && outcome.kind !== 'client_abort') {
      r.error = {
        code: this.opts.secrets.clip(error.errorCode ?? error.code, MAX_FIELD),
        message: this.opts.secrets.clip(error.message, MAX_MESSAGE),
      };
      // A failure after output (the stream broke) is no failed attempt: attemptFailed never saw it.
      const upstream = ctx.upstream;
      if (
        upstream !== undefined &&
        r.countedAttempt !== ctx.attempts &&
        (error.phase === 'stream' || error.phase === 'body')
      )
        this.upstreamFailed(upstream.name, error);
    } else if (outcome.kind === 'ok' && outcome.status >= 400 && r.error === null) {
      r.error = { code: `http_${outcome.status}`, message: '' };
    }
    r.state =
      outcome.kind === 'client_abort'
        ? 'aborted'
        : outcome.kind === 'error' || r.error !== null
          ? 'error'
          : 'ok';
    r.event('finish', `${r.state} ${outcome.status}`);
    this.active--;
    if (r.state === 'error') this.errors++;
    // The per-second series.
    this.advance(Date.now());
    this.count++;
    if (r.state === 'error') this.failed++;
    this.latency.add(outcome.durationMs);
    if (r.ttfbMs !== null) this.ttfb.add(r.ttfbMs);
    this.touch(r);
  }

  // --- reads, once per batch ----------------------------------------------------------------

  /** Starts or stops queueing changed requests for deltas. */
  setTracking(on: boolean): void {
    if (on === this.tracking) return;
    this.tracking = on;
    if (!on) this.takeDirty(0);
  }

  /** Requests changed since the last call, newest first, at most `max`. */
  takeDirty(max: number): RequestRecord[] {
    const list = this.dirty;
    if (list.length === 0) return list;
    this.dirty = [];
    for (const r of list) r.dirty = false;
    if (max <= 0) return [];
    list.sort((a, b) => b.seq - a.seq);
    return list.length > max ? list.slice(0, max) : list;
  }

  /** The recent requests, newest first. */
  recent(): RequestRecord[] {
    const out: RequestRecord[] = [];
    const n = this.ring.length;
    for (let i = 1; i <= this.stored; i++) {
      const r = this.ring[(this.head - i + n) % n];
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  /** Closes every second before `now` into a point (empty seconds too). */
  advance(now: number): void {
    const sec = Math.floor(now / 1000) * 1000;
    if (sec <= this.second) return;
    this.closeSecond();
    // Seconds with no finished request.
    const gap = Math.min((sec - this.second) / 1000 - 1, SERIES_SECONDS);
    for (let i = gap; i >= 1; i--) this.push(emptyPoint(sec - i * 1000));
    this.second = sec;
  }

  /** The points closed since the last call (oldest first): what the next delta carries. */
  takePoints(): WirePoint[] {
    const n = this.pending;
    this.pending = 0;
    return n === 0 ? [] : this.points.slice(-n);
  }

  /** Points already sent in a delta (oldest first): what a snapshot carries. */
  sentPoints(): WirePoint[] {
    return this.pending === 0 ? this.points.slice() : this.points.slice(0, -this.pending);
  }

  totals(): WireTotals {
    return {
      requests: this.requests,
      errors: this.errors,
      inflight: this.active,
      tokensIn: this.tokensIn,
      tokensOut: this.tokensOut,
      startedAt: this.startedAt,
    };
  }

  upstream(name: string, now: number): UpstreamCounters {
    const w = this.windows.get(name);
    if (w === undefined) return { requests5m: 0, errors5m: 0, lastError: null };
    const [requests5m, errors5m] = w.sums(Math.floor(now / 1000));
    return { requests5m, errors5m, lastError: w.lastError };
  }

  // --- internals ----------------------------------------------------------------------------

  private touch(r: RequestRecord): void {
    if (!this.tracking || r.dirty) return;
    r.dirty = true;
    this.dirty.push(r);
  }

  /** Fields known only later in the request: route after matchRoute, model after the body. */
  private sync(r: RequestRecord, ctx: RequestContext): void {
    if (r.route === null && ctx.route !== undefined) r.route = ctx.route.kind;
    if (r.model === null && ctx.model !== undefined) r.model = this.opts.secrets.clip(ctx.model, MAX_FIELD);
    if (r.client === null && ctx.clientName !== undefined) r.client = ctx.clientName;
    if (ctx.upstream !== undefined) r.upstream = ctx.upstream.name;
    r.attempts = ctx.attempts;
  }

  private window(name: string): UpstreamWindow {
    let w = this.windows.get(name);
    if (w === undefined) this.windows.set(name, (w = new UpstreamWindow()));
    return w;
  }

  private upstreamFailed(name: string, error: GatewayError): void {
    const now = Date.now();
    const w = this.window(name);
    w.fail(Math.floor(now / 1000));
    const code = error.errorCode ?? error.code;
    w.lastError = {
      time: now,
      message: this.opts.secrets.clip(`${error.status} ${code}: ${error.message}`, MAX_MESSAGE),
    };
  }

  private closeSecond(): void {
    const [p50, p95] = this.latency.take();
    const [ttfb50, ttfb95] = this.ttfb.take();
    this.push({
      t: this.second,
      rps: this.count,
      errorRate: this.count === 0 ? 0 : Math.round((this.failed / this.count) * 10_000) / 10_000,
      p50,
      p95,
      ttfb50,
      ttfb95,
    });
    this.count = 0;
    this.failed = 0;
  }

  private push(p: WirePoint): void {
    this.points.push(p);
    if (this.pending < SERIES_SECONDS) this.pending++;
    if (this.points.length > SERIES_SECONDS) this.points.splice(0, this.points.length - SERIES_SECONDS);
  }
}

function record(ctx: RequestContext): RequestRecord | undefined {
  return ctx.peekState(RECORD);
}

function emptyPoint(t: number): WirePoint {
  return { t, rps: 0, errorRate: 0, p50: null, p95: null, ttfb50: null, ttfb95: null };
}
