/**
 * Responses over WebSocket, the transport Codex uses by default: the upgrade on a Responses route
 * (the core has checked the client key), the per-key socket cap, and the sessions. A socket is a
 * session: its turns stay on one upstream while that upstream is usable.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import {
  createStateKey,
  type PluginContext,
  type RequestContext,
  type UpgradeRequest,
  type Upstream,
} from '../../../core/index.js';
import type { WebSocketOptions } from './options.js';
import { ResponsesSocket } from './session.js';
import { SocketMetrics } from './socket-metrics.js';
import { acceptedBeta, turnBaseHeaders } from './turn-headers.js';

/** How long a closing socket's peer has to answer the close at shutdown. */
const CLOSE_WAIT_MS = 2000;

/** The session a turn belongs to. */
const SESSION = createStateKey<ResponsesSocket | undefined>('responses-routes.ws-session', () => undefined);

export function sessionOf(ctx: RequestContext): ResponsesSocket | undefined {
  return ctx.transport === 'websocket' ? ctx.peekState(SESSION) : undefined;
}

export class ResponsesWebSocket {
  private readonly sessions = new Set<ResponsesSocket>();
  private readonly perKey = new Map<string, number>();
  private server: WebSocketServer | undefined;
  /** What the server was made with: a reload that changes them makes a new one. */
  private serverFor = '';
  private leaving = false;
  private readonly metrics: SocketMetrics;

  constructor(
    private readonly context: PluginContext,
    private readonly options: () => WebSocketOptions,
  ) {
    this.metrics = new SocketMetrics(context.metrics, () => this.sessions.size);
  }

  /** The `upgrade` tap's work for a Responses path; false leaves it to the 426 answer. */
  upgrade({ req, socket, head }: UpgradeRequest, keyName: string): boolean {
    const options = this.options();
    if (!options.enabled || !this.servable()) return false;
    if (!acceptedBeta(req.headers['openai-beta'])) return false;
    if (this.leaving) {
      this.metrics.upgrade('shutting_down');
      refuse(socket, 503, 'server_shutting_down', 'Gateway is shutting down');
      return true;
    }
    if ((this.perKey.get(keyName) ?? 0) >= options.maxSocketsPerKey) {
      // 426 rather than 429: Codex then uses HTTP for the session at once instead of retrying.
      this.metrics.upgrade('key_cap');
      refuse(
        socket,
        426,
        'websocket_limit_reached',
        `Too many open WebSockets for this key (${options.maxSocketsPerKey}); use HTTP`,
      );
      return true;
    }
    const url = req.url ?? '/v1/responses';
    const headers = turnBaseHeaders(req.headers);
    this.serverOf(options).handleUpgrade(req, socket, head, (ws) => {
      const session = new ResponsesSocket({
        ws,
        socket: socket as Socket,
        url,
        headers,
        keyName,
        context: this.context,
        options: this.options,
        onClose: (s) => this.remove(s),
        onTurn: (ctx, s) => ctx.setState(SESSION, s),
      });
      this.sessions.add(session);
      this.metrics.upgrade('accepted');
      this.perKey.set(keyName, (this.perKey.get(keyName) ?? 0) + 1);
      this.context.logger.debug({ session: session.id }, 'websocket session opened');
    });
    return true;
  }

  /**
   * A turn's upstream: the session's, while it is a candidate. One that is cooling or disabled lets
   * the session move for good; one that is only busy (or was tried) serves this turn elsewhere.
   */
  select(ctx: RequestContext, candidates: Upstream[]): Upstream | undefined {
    const session = sessionOf(ctx);
    if (session?.bound === undefined) return undefined;
    const bound = candidates.find((u) => u.name === session.bound);
    if (bound !== undefined) return bound;
    const state = this.context.pool.state;
    if (
      state.disabled(session.bound) !== undefined ||
      state.cooldown(session.bound, ctx.model, Date.now()) !== undefined
    )
      session.bound = undefined;
    return undefined;
  }

  /** The first upstream a session's turn goes to becomes the session's. */
  attempted(ctx: RequestContext, upstream: Upstream): void {
    const session = sessionOf(ctx);
    if (session !== undefined) session.bound ??= upstream.name;
  }

  /** Open sockets, for tests and the log. */
  get size(): number {
    return this.sessions.size;
  }

  /** Shutdown began: idle sockets close now, busy ones after their turn. */
  leave(): void {
    this.leaving = true;
    for (const s of this.sessions) s.leave();
  }

  /**
   * The gateway stops (its turns are done): every socket gets its 1001 after the output still queued
   * for it; one whose peer has not closed within CLOSE_WAIT_MS is dropped.
   */
  async close(): Promise<void> {
    this.leaving = true;
    const open = [...this.sessions];
    for (const s of open) s.closeNow();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
    await Promise.race([Promise.all(open.map((s) => s.closed)), waited]);
    clearTimeout(timer);
    for (const s of this.sessions) s.terminate();
    this.server?.close();
  }

  /** Whether any upstream's type serves turns bridged from a WebSocket. */
  private servable(): boolean {
    const types = this.context.upstreamTypes;
    return this.context.pool.upstreams.some((u) => types.get(u.type)?.websocket !== false);
  }

  private serverOf(options: WebSocketOptions): WebSocketServer {
    const maxPayload = this.context.config.server.bodyLimit;
    const key = `${maxPayload}:${options.compression}`;
    if (this.server === undefined || this.serverFor !== key) {
      this.server = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        maxPayload,
        perMessageDeflate: options.compression ? { threshold: 1024 } : false,
      });
      this.serverFor = key;
    }
    return this.server;
  }

  private remove(session: ResponsesSocket): void {
    if (!this.sessions.delete(session)) return;
    const n = (this.perKey.get(session.keyName) ?? 1) - 1;
    if (n <= 0) this.perKey.delete(session.keyName);
    else this.perKey.set(session.keyName, n);
    this.context.logger.debug({ session: session.id }, 'websocket session closed');
  }
}

/** Answers an upgrade it refuses with an OpenAI-shaped error, then closes. */
function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\nconnection: close\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
