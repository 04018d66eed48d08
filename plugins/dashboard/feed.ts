/**
 * The live feed: viewers on WebSockets get a snapshot when they connect, then a delta per batch
 * (one timer per gateway, every `batchMs`) when something changed. Each message is serialised once,
 * for all viewers. A viewer that does not keep up (more than `maxBufferedBytes` waiting in its
 * socket) is dropped; nothing on the proxy path ever waits for a viewer.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger, Secrets, UpgradeRequest, UpstreamPool, UpstreamQuota } from '../../core/index.js';
import { sameOrigin, type DashboardAuth, type Identity } from './auth.js';
import type { Collector, WirePoint, WireRequest, WireTotals } from './collector.js';

export interface WireUpstream {
  name: string;
  type: string;
  state: 'ok' | 'cooling' | 'disabled';
  coolingUntil: number | null;
  reason: string | null;
  inFlight: number;
  maxConcurrency: number;
  /** Requests waiting for a slot: the queue is shared by every upstream. */
  queue: number;
  requests5m: number;
  errors5m: number;
  errorRate5m: number;
  lastError: { time: number; message: string } | null;
  /** The provider's usage windows (Codex: 5-hour and weekly), as last reported; null if never. */
  quota: WireQuota | null;
  /** Its type can force a token refresh (the card offers the button). */
  refreshable: boolean;
}

export interface WireQuotaWindow {
  id: string;
  /** `5h`, `weekly`… */
  label: string;
  usedPercent: number;
  windowMinutes: number | null;
  /** ms epoch; a window past it has reset (the page shows it empty). */
  resetsAt: number | null;
}

export interface WireQuota {
  windows: WireQuotaWindow[];
  observedAt: number;
}

export interface SnapshotMessage {
  type: 'snapshot';
  v: 1;
  now: number;
  requests: WireRequest[];
  upstreams: WireUpstream[];
  series: { step: 1000; points: WirePoint[] };
  totals: WireTotals;
}

export interface DeltaMessage {
  type: 'delta';
  now: number;
  requests: WireRequest[];
  upstreams: WireUpstream[];
  points: WirePoint[];
  totals: WireTotals;
}

export interface FeedOptions {
  batchMs: number;
  maxViewers: number;
  maxBufferedBytes: number;
  /** Requests at most per message. */
  recent: number;
}

interface Viewer {
  ws: WebSocket;
  identity: Identity;
  /** Answered the last ping. */
  alive: boolean;
}

/** Close codes the page knows: 4401 means "log in again". */
export const CLOSE_LOGGED_OUT = 4401;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_AGAIN = 1013;
const PING_EVERY_MS = 30_000;
/** Client → server frames are ignored; this bounds what a client can make the gateway read. */
const MAX_PAYLOAD = 1024;
const MAX_MESSAGE = 300;
const MAX_LABEL = 32;

export class Feed {
  private readonly viewers = new Set<Viewer>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: MAX_PAYLOAD,
    perMessageDeflate: false,
  });
  private timer: NodeJS.Timeout | undefined;
  private lastUpstreams = '';
  private lastSecond = 0;
  private lastPing = Date.now();
  private closed = false;
  /** The gateway is shutting down: viewers were told to go. */
  private leaving = false;
  /** Given at `ready`: until then (and from `closing` on) no viewer is taken. */
  private pool: UpstreamPool | undefined;

  constructor(
    private readonly collector: Collector,
    private readonly auth: DashboardAuth,
    private readonly secrets: Secrets,
    private readonly opts: FeedOptions,
    private readonly log: Logger,
    /** Whether upstreams of a type can force a token refresh (admin API). */
    private readonly refreshable: (type: string) => boolean = () => false,
  ) {
    auth.onSessionEnd = (key) => {
      for (const v of this.viewers)
        if (v.identity.kind === 'session' && v.identity.key === key)
          v.ws.close(CLOSE_LOGGED_OUT, 'logged out');
    };
  }

  /** New limits and batch interval (a config reload); a viewer over the new `maxViewers` may stay. */
  configure(next: Pick<FeedOptions, 'batchMs' | 'maxViewers' | 'maxBufferedBytes'>): void {
    const restart = next.batchMs !== this.opts.batchMs && this.timer !== undefined;
    Object.assign(this.opts, next);
    if (!restart) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.start();
  }

  /** The admin token changed: viewers that came with the old one (bearer or session) must log in again. */
  revokeAll(): void {
    for (const v of this.viewers) v.ws.close(CLOSE_LOGGED_OUT, 'admin token changed');
  }

  /** The one batch timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setInterval(this.tick, this.opts.batchMs);
    this.timer.unref();
  }

  /** The gateway accepts connections (`ready`): viewers may come, and the pool is there to show. */
  ready(pool: UpstreamPool): void {
    this.pool = pool;
  }

  /**
   * The gateway is shutting down (`closing`). Its close waits for every connection, upgraded ones
   * included, so viewers are let go now, before the drain.
   */
  closing(): void {
    this.goingAway();
  }

  /** The `upgrade` tap's work for `{path}/ws`: auth, then Origin, then the handshake. */
  upgrade({ req, socket, head }: UpgradeRequest): void {
    if (this.closed || this.leaving || this.pool === undefined) return refuse(socket, 503);
    const identity = this.auth.identify(req);
    if (identity.kind === 'denied')
      return identity.retryAfter > 0
        ? refuse(socket, 429, `retry-after: ${identity.retryAfter}\r\n`)
        : refuse(socket, 401, 'www-authenticate: Bearer\r\n');
    if (!sameOrigin(req.headers)) return refuse(socket, 403);
    if (this.viewers.size >= this.opts.maxViewers) return refuse(socket, 503, 'retry-after: 5\r\n');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.add(ws, identity));
  }

  /** Ends the feed: the timer, every viewer (told the gateway is going away), the WebSocket server. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.goingAway();
    this.collector.setTracking(false);
    this.wss.close();
  }

  private add(ws: WebSocket, identity: Identity): void {
    if (this.closed || this.viewers.size >= this.opts.maxViewers) {
      ws.close(CLOSE_TRY_AGAIN, 'too many viewers');
      return;
    }
    const viewer: Viewer = { ws, identity, alive: true };
    this.viewers.add(viewer);
    this.collector.setTracking(true);
    ws.on('pong', () => (viewer.alive = true));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.remove(viewer));
    this.send(viewer, Buffer.from(this.snapshot(Date.now())));
  }

  private remove(viewer: Viewer): void {
    if (!this.viewers.delete(viewer)) return;
    if (this.viewers.size === 0) this.collector.setTracking(false);
  }

  /** Sends without waiting; a viewer whose socket holds more than the bound is dropped instead. */
  private send(viewer: Viewer, data: Buffer): void {
    const ws = viewer.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.log.warn(
        { bufferedBytes: ws.bufferedAmount, limit: this.opts.maxBufferedBytes },
        'dashboard viewer too slow: dropped',
      );
      this.remove(viewer);
      ws.terminate();
      return;
    }
    ws.send(data, { binary: false });
  }

  private readonly tick = (): void => {
    try {
      this.flush(Date.now());
    } catch (err) {
      this.log.error({ err }, 'dashboard feed batch failed');
    }
  };

  private flush(now: number): void {
    const collector = this.collector;
    collector.advance(now);
    if (now - this.lastSecond >= 1000) {
      this.lastSecond = now;
      this.everySecond(now);
    }
    if (this.viewers.size === 0) {
      collector.takePoints();
      return;
    }
    if (this.leaving) return;
    if (now - this.lastPing >= PING_EVERY_MS) {
      this.lastPing = now;
      this.ping();
    }
    const upstreams = JSON.stringify(this.upstreams(now));
    const requests = collector.takeDirty(this.opts.recent);
    const points = collector.takePoints();
    if (requests.length === 0 && points.length === 0 && upstreams === this.lastUpstreams) return;
    this.lastUpstreams = upstreams;
    const message = Buffer.from(
      `{"type":"delta","now":${now},"requests":${JSON.stringify(requests)},"upstreams":${upstreams},` +
        `"points":${JSON.stringify(points)},"totals":${JSON.stringify(collector.totals())}}`,
    );
    for (const v of this.viewers) this.send(v, message);
  }

  private snapshot(now: number): string {
    const c = this.collector;
    c.advance(now);
    const message: SnapshotMessage = {
      type: 'snapshot',
      v: 1,
      now,
      requests: c.recent().map((r) => r.toJSON()),
      upstreams: this.upstreams(now),
      series: { step: 1000, points: c.sentPoints() },
      totals: c.totals(),
    };
    return JSON.stringify(message);
  }

  /** Once a second: end viewers whose session expired. */
  private everySecond(now: number): void {
    for (const v of this.viewers) {
      if (v.identity.kind === 'session' && !this.auth.alive(v.identity.key, now))
        v.ws.close(CLOSE_LOGGED_OUT, 'session expired');
    }
  }

  /** Drops viewers that did not answer the last ping (half-open connections), pings the rest. */
  private ping(): void {
    for (const v of this.viewers) {
      if (!v.alive) {
        this.remove(v);
        v.ws.terminate();
        continue;
      }
      v.alive = false;
      v.ws.ping();
    }
  }

  /** Lets every viewer go: a close frame to those that keep up, a cut for the rest. */
  private goingAway(): void {
    if (this.leaving) return;
    this.leaving = true;
    for (const v of this.viewers) {
      if (v.ws.bufferedAmount > 0) v.ws.terminate();
      else v.ws.close(CLOSE_GOING_AWAY, 'gateway shutting down');
    }
    const stragglers = setTimeout(() => {
      for (const v of this.viewers) v.ws.terminate();
    }, 1000);
    stragglers.unref();
  }

  /** Numbers and the plugin's labels only: nothing else of the account goes out. */
  private quota(q: UpstreamQuota): WireQuota {
    return {
      windows: q.windows.map((w) => ({
        id: this.secrets.clip(w.id, MAX_LABEL),
        label: this.secrets.clip(w.label, MAX_LABEL),
        usedPercent: w.usedPercent,
        windowMinutes: w.windowMinutes,
        resetsAt: w.resetsAt,
      })),
      observedAt: q.observedAt,
    };
  }

  private upstreams(now: number): WireUpstream[] {
    const pool = this.pool;
    if (pool === undefined) return [];
    const queue = pool.queue.length;
    const out: WireUpstream[] = [];
    for (const u of pool.upstreams) {
      let view;
      try {
        view = pool.state.view(u.name, now);
      } catch {
        continue;
      }
      let state: WireUpstream['state'] = 'ok';
      let coolingUntil: number | null = null;
      let reason: string | null = null;
      if (view.disabled !== undefined) {
        state = 'disabled';
        reason = this.secrets.clip(view.disabled, MAX_MESSAGE);
      } else if (view.cooldowns.length > 0) {
        // The one that lasts longest; an account-wide one wins a tie.
        let c = view.cooldowns[0]!;
        for (const d of view.cooldowns)
          if (d.until > c.until || (d.until === c.until && d.model === null)) c = d;
        state = 'cooling';
        coolingUntil = c.until;
        reason = this.secrets.clip(c.model === null ? c.reason : `${c.model}: ${c.reason}`, MAX_MESSAGE);
      }
      const counters = this.collector.upstream(u.name, now);
      out.push({
        name: u.name,
        type: u.type,
        state,
        coolingUntil,
        reason,
        inFlight: view.inFlight,
        maxConcurrency: u.maxConcurrency,
        queue,
        requests5m: counters.requests5m,
        errors5m: counters.errors5m,
        errorRate5m:
          counters.requests5m === 0
            ? 0
            : Math.min(1, Math.round((counters.errors5m / counters.requests5m) * 10_000) / 10_000),
        lastError: counters.lastError,
        quota: view.quota === undefined ? null : this.quota(view.quota),
        refreshable: this.refreshable(u.type),
      });
    }
    return out;
  }
}

/** Answers an upgrade that is refused, then lets the socket go once the answer is out. */
function refuse(socket: Duplex, status: number, extra = ''): void {
  const body = `${STATUS_CODES[status] ?? 'Refused'}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\n` +
      `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`,
  );
}
