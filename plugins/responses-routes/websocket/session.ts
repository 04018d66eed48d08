/**
 * One client WebSocket on a Responses route: a session. Each `response.create` frame is one turn,
 * run through the pipeline like an HTTP request (its own request id, the key's limits, failover);
 * one turn at a time. Between turns the socket holds no upstream slot, only its idle clock.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import {
  formatDuration,
  InvalidRequestError,
  parseJsonBody,
  BodyTooLargeError,
  derive,
  ShuttingDownError,
  type GatewayError,
  type PluginContext,
  type RequestContext,
  unsafeHeaderChar,
} from '../../../core/index.js';
import { expandContinuation, inputItems, type LastResponse } from './continuation.js';
import { errorFrame, prewarmFrames } from './frames.js';
import { codexTurnId, turnMetadataHeaders } from './turn-headers.js';
import { Turn } from './turn.js';
import type { WebSocketOptions } from './options.js';

/** Close codes: normal (idle, age), going away (shutdown). */
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;

export interface SessionInit {
  ws: WebSocket;
  socket: Socket;
  /** The handshake's path: every turn is matched as a POST to it. */
  url: string;
  /** The handshake's headers, ready for turns (see turn-headers.ts). */
  headers: IncomingHttpHeaders;
  /** The client key's name ('' without keys): the per-key socket cap counts by it. */
  keyName: string;
  context: PluginContext;
  options: () => WebSocketOptions;
  /** Called once, when the socket is gone. */
  onClose(session: ResponsesSocket): void;
  /** Called when a turn's context exists, before any hook runs. */
  onTurn(ctx: RequestContext, session: ResponsesSocket): void;
}

export class ResponsesSocket {
  readonly id = randomUUID();
  readonly keyName: string;
  /** The upstream this session's turns stay on while it is usable (see the selectUpstream tap). */
  bound: string | undefined;
  /**
   * The Codex backend's `x-codex-turn-state` of the current Codex turn: over HTTP Codex sends it back
   * on every request of the turn (the backend routes them alike), so the socket does that for it.
   */
  private turnState: { turn: string; value: string } | undefined;
  /** The Codex turn of the request running now (from its `x-codex-turn-metadata`). */
  private codexTurn: string | undefined;
  private readonly openedAt = Date.now();
  private turn: Turn | undefined;
  /** A create that came after the turn's last frame but before the turn had finished: it runs next. */
  private pending: Record<string, unknown> | undefined;
  private last: LastResponse | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private leaving = false;
  private gone = false;

  constructor(private readonly init: SessionInit) {
    this.keyName = init.keyName;
    // A socket opened mid-turn (Codex reconnecting) carries that turn's state: it applies to that turn only.
    const handshakeState = init.headers['x-codex-turn-state'];
    const handshakeTurn = codexTurnId(init.headers);
    if (typeof handshakeState === 'string' && handshakeTurn !== undefined)
      this.turnState = { turn: handshakeTurn, value: handshakeState };
    delete init.headers['x-codex-turn-state'];
    const ws = init.ws;
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onGone());
    ws.on('error', () => ws.terminate());
    ws.on('pong', () => (this.awaitingPong = false));
    const ping = init.options().pingInterval;
    if (ping > 0) this.pingTimer = setInterval(() => this.ping(), ping).unref();
    this.armIdle();
  }

  /** Whether a turn is running. */
  get busy(): boolean {
    return this.turn !== undefined;
  }

  /** Shutdown: an idle socket closes now, a busy one once its turn has ended. */
  leave(): void {
    this.leaving = true;
    if (this.turn === undefined) this.init.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
  }

  /** Closes with 1001 behind any output still queued (compression is asynchronous). */
  closeNow(): void {
    this.leaving = true;
    this.init.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
  }

  terminate(): void {
    this.init.ws.terminate();
  }

  // Declared before `closed`: a field defined after it would reset what its initializer set.
  private resolveClosed!: () => void;
  /** Settles once the socket is gone. */
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));

  private onMessage(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.refuse(new InvalidRequestError('Binary frames are not supported: send JSON text frames'));
      return;
    }
    const config = this.init.context.config.server;
    let frame: Record<string, unknown>;
    try {
      frame = parseJsonBody(asBuffer(data), undefined, config.maxJsonDepth, config.maxJsonValues);
    } catch (err) {
      this.refuse(err as GatewayError);
      return;
    }
    const type = frame.type;
    if (type === 'response.create') return this.create(frame);
    // Codex's note that it recorded a response: nothing to answer, and never a turn.
    if (type === 'response.processed') return;
    this.refuse(
      new InvalidRequestError(
        typeof type === 'string'
          ? `Unsupported frame type "${type.slice(0, 64)}": send response.create`
          : 'A frame needs a "type": send response.create',
        { param: 'type' },
      ),
    );
  }

  private create(frame: Record<string, unknown>): void {
    if (this.turn?.ended === true && this.pending === undefined) {
      this.pending = frame;
      return;
    }
    if (this.turn !== undefined) {
      this.refuse(
        new InvalidRequestError(
          'A response is already in progress on this connection: wait for its terminal event',
          { errorCode: 'response_in_progress' },
        ),
      );
      return;
    }
    if (this.leaving) {
      this.refuse(new ShuttingDownError('Gateway is shutting down; open a new connection'));
      this.init.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    const options = this.init.options();
    if (Date.now() - this.openedAt >= options.maxAge) {
      // What the Responses API sends at its own connection cap: Codex opens a new socket and
      // resends the full input (it counts as one of its stream retries).
      this.refuse(
        new InvalidRequestError(
          `Responses websocket connection limit reached (${ageLabel(options.maxAge)}). Create a new websocket connection to continue.`,
          { errorCode: 'websocket_connection_limit_reached' },
        ),
      );
      this.init.ws.close(CLOSE_NORMAL, 'connection age limit');
      return;
    }
    delete frame.type;
    if (frame.generate === false) return this.prewarm(frame);
    delete frame.generate;
    const expanded = expandContinuation(frame, this.last);
    if (expanded.kind === 'unknown') {
      this.refuse(
        new InvalidRequestError(`Previous response with id '${expanded.id.slice(0, 128)}' not found.`, {
          errorCode: 'previous_response_not_found',
          param: 'previous_response_id',
        }),
      );
      return;
    }
    // The socket is the stream: every turn's events come as frames.
    frame.stream = true;
    const body = Buffer.from(JSON.stringify(frame));
    const limit = this.init.context.config.server.bodyLimit;
    if (body.length > limit) {
      this.refuse(
        new BodyTooLargeError(`The turn's input with its history is over ${limit} bytes (server.bodyLimit)`),
      );
      return;
    }
    this.runTurn(frame, body, options);
  }

  private runTurn(frame: Record<string, unknown>, body: Buffer, options: WebSocketOptions): void {
    this.disarmIdle();
    const config = this.init.context.config;
    // Only the last response can be continued: a turn whose input is not kept keeps no output either.
    const turn = new Turn(this.init.ws, options.maxBufferedBytes, config.proxy.maxEventBytes, true);
    this.turn = turn;
    const input = inputItems(frame.input);
    const headers = turnMetadataHeaders(this.init.headers, frame.client_metadata);
    this.codexTurn = codexTurnId(headers);
    const state = this.turnState;
    if (state !== undefined && state.turn === this.codexTurn) headers['x-codex-turn-state'] = state.value;
    const exchange = this.init.context.dispatch(
      {
        url: this.init.url,
        headers,
        socket: this.init.socket,
        body,
        json: frame,
        transport: 'websocket',
        onContext: (ctx) => this.init.onTurn(ctx, this),
      },
      turn,
    );
    turn.exchange = exchange;
    void exchange.done.then(() => this.turnEnded(turn, input));
  }

  /** The upstream answered a turn with the backend's turn state: later requests of that Codex turn send it. */
  upstreamTurnState(value: string | string[] | undefined): void {
    if (typeof value !== 'string' || this.codexTurn === undefined) return;
    if (value.length > 4096 || unsafeHeaderChar(value, true) !== undefined) return;
    this.turnState = { turn: this.codexTurn, value };
  }

  private turnEnded(turn: Turn, input: unknown[]): void {
    this.turn = undefined;
    this.last =
      turn.completedId === undefined ? undefined : { id: turn.completedId, input, output: turn.output };
    if (this.gone) return;
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) return this.create(pending);
    if (this.leaving) {
      this.init.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    this.armIdle();
  }

  /** `generate: false`: the socket is warm once it answers; the next turn chains from this id. */
  private prewarm(frame: Record<string, unknown>): void {
    const id = 'resp_' + randomUUID().replace(/-/g, '');
    for (const text of prewarmFrames(id, frame.model, Math.floor(Date.now() / 1000))) this.init.ws.send(text);
    this.last = { id, input: inputItems(frame.input), output: [] };
    this.armIdle();
  }

  /** Answers a frame the front end refuses itself; the socket stays open. */
  private refuse(error: GatewayError): void {
    this.init.context.logger.debug(
      { session: this.id, code: error.code, errorCode: error.errorCode },
      'websocket frame refused',
    );
    if (this.init.ws.readyState !== this.init.ws.OPEN) return;
    // A message may quote what the client sent (a type, an id): never a secret the gateway knows.
    const message = this.init.context.secrets.clip(error.message, 1024);
    this.init.ws.send(errorFrame(message === error.message ? error : derive(error, { message })));
  }

  private ping(): void {
    const ws = this.init.ws;
    if (this.awaitingPong) {
      // No answer to the last ping: the peer is gone without a close.
      ws.terminate();
      return;
    }
    this.awaitingPong = true;
    ws.ping();
  }

  private armIdle(): void {
    this.disarmIdle();
    const ms = this.init.options().idleTimeout;
    if (ms > 0)
      this.idleTimer = setTimeout(() => this.init.ws.close(CLOSE_NORMAL, 'idle timeout'), ms).unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.resolveClosed();
    this.disarmIdle();
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    // A turn in flight: the upstream is cancelled and its slot freed; it ends as a client abort.
    this.turn?.exchange?.cancel();
    this.init.onClose(this);
  }
}

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** `60 minutes`, as the Responses API words its own cap; other lengths as tapgate writes durations. */
function ageLabel(ms: number): string {
  const minutes = ms / 60_000;
  return Number.isInteger(minutes) ? `${minutes} minute${minutes === 1 ? '' : 's'}` : formatDuration(ms);
}
