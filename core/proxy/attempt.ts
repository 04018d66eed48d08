/**
 * One upstream attempt: the request leg through http-proxy-3, the timers (connect, first byte,
 * idle), the guard for an upstream that dies mid-response, and the relay to the client with
 * backpressure. It never writes an error itself; it reports one, and whether headers had gone out.
 */
import { STATUS_CODES, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { RequestContext } from '../kernel/context.js';
import {
  ClientStalledError,
  fromSocketError,
  GatewayError,
  requestTotalTimeout,
  UpstreamConnectTimeoutError,
  UpstreamConnectionLostError,
  UpstreamFirstByteTimeoutError,
  UpstreamHttpError,
  UpstreamIdleTimeoutError,
  UpstreamIncompleteStreamError,
  UpstreamMalformedError,
  UpstreamTooLargeError,
  InternalError,
} from '../kernel/errors.js';
import { clientResponseHeaders, notJsonBody, unreadableBody } from './headers.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import { parseFrame, serializeEvent, SseFramer, SseFrameTooLargeError } from './sse.js';
import type { OutgoingRequest } from '../kernel/types.js';
import { formatDuration } from '../config/units.js';
import type { Upstream } from '../pool/upstream.js';

export type AttemptResult =
  | { kind: 'ok' }
  /** `committed`: this attempt's output reached the client, so only a terminal write is possible. */
  | { kind: 'failed'; error: GatewayError; committed: boolean }
  | { kind: 'aborted' };

type Phase = 'connect' | 'firstByte' | 'body' | 'settled';

/** Error bodies are small; keep at most this much for classification and pass-through. */
const MAX_ERROR_BODY = 256 * 1024;
/** After a terminal event, how long the rest of the upstream body may take before the socket is dropped. */
const DRAIN_GRACE_MS = 1000;

/** Emitters carry their attempt under this key, so listeners are shared functions, not closures. */
const OWNER = Symbol('tapgate.attempt');
type Owned<T> = T & { [OWNER]?: Attempt };

/**
 * Upstream responses being read to their end after a terminal event (so the keep-alive socket can
 * be reused), each with a deadline. One sweep timer serves them all, instead of a timer per stream.
 */
const draining = new Map<IncomingMessage, number>();
let drainSweep: NodeJS.Timeout | undefined;

function forgetDrained(this: IncomingMessage): void {
  draining.delete(this);
}

function sweepDraining(): void {
  const now = Date.now();
  for (const [res, deadline] of draining) {
    if (deadline > now) continue;
    draining.delete(res);
    res.destroy();
  }
  if (draining.size === 0 && drainSweep !== undefined) {
    clearInterval(drainSweep);
    drainSweep = undefined;
  }
}

/** Reads and discards what follows a terminal event, within DRAIN_GRACE_MS. */
function drainAfterTerminal(res: IncomingMessage): void {
  if (res.complete) return;
  draining.set(res, Date.now() + DRAIN_GRACE_MS);
  res.on('end', forgetDrained);
  res.on('close', forgetDrained);
  res.resume();
  drainSweep ??= setInterval(sweepDraining, 250).unref();
}

export interface AttemptDeps {
  hooks: GatewayHooks;
  maxEventBytes: number;
  /** server.sendTimeout: how long a client may leave written output undrained (0: no bound). */
  sendTimeout: number;
  /** Pre-output hold bounds; events a tap marks `hold` wait for the first content event. */
  hold: { enabled: boolean; maxEvents: number; maxBytes: number; maxTime: number };
}

export class Attempt {
  private phase: Phase = 'connect';
  private timer: NodeJS.Timeout | undefined;
  private proxyReq: ClientRequest | undefined;
  private proxyRes: IncomingMessage | undefined;
  private framer: SseFramer | undefined;
  /** The upstream's status, written to the client with the first body byte (see `commit`). */
  private status = 200;
  private out = '';
  /** Events held back before the first content event (pre-output hold). */
  private held = '';
  private heldEvents = 0;
  private holding: boolean;
  private holdTimer: NodeJS.Timeout | undefined;
  /** Armed while the client has not drained what was written (server.sendTimeout). */
  private sendTimer: NodeJS.Timeout | undefined;
  /** The request's deadline (timeouts.total), counted from its arrival. */
  private totalTimer: NodeJS.Timeout | undefined;
  private stopped: GatewayError | true | undefined;
  /** The frames of the current chunk go out exactly as received (see onData). */
  private exact = true;
  /** The previous chunk ended on a frame boundary: nothing carried over into this one. */
  private boundaryClean = true;
  private errorChunks: Buffer[] | undefined;
  private errorBytes = 0;
  /** A JSON answer on a JSON API route, held until complete and checked (see holdJson). */
  private jsonChunks: Buffer[] | undefined;
  private jsonBytes = 0;
  private resolve!: (r: AttemptResult) => void;
  readonly done: Promise<AttemptResult>;

  constructor(
    private readonly deps: AttemptDeps,
    readonly ctx: RequestContext,
    readonly upstream: Upstream,
    readonly outgoing: OutgoingRequest,
  ) {
    this.done = new Promise((r) => (this.resolve = r));
    this.holding = deps.hold.enabled;
    this.arm(upstream.timeouts.connect);
    const total = upstream.timeouts.total;
    if (total > 0) {
      // What a queue wait and earlier attempts used is gone: the deadline is the request's, not this attempt's.
      const left = Math.max(0, ctx.startedAt + total - performance.now());
      this.totalTimer = setTimeout(Attempt.onTotalTimeout, left, this);
    }
  }

  // --- listeners: shared functions that find their attempt on the emitter ------------------

  private static onConnected(this: Owned<Socket>): void {
    const attempt = this[OWNER];
    this[OWNER] = undefined;
    attempt?.connected();
  }
  private static onData(this: Owned<IncomingMessage>, chunk: Buffer): void {
    this[OWNER]!.data(chunk);
  }
  private static onEnd(this: Owned<IncomingMessage>): void {
    this[OWNER]!.end();
  }
  private static onUpstreamError(this: Owned<IncomingMessage>, err: Error): void {
    this[OWNER]!.upstreamError(err);
  }
  private static onUpstreamClose(this: Owned<IncomingMessage>): void {
    this[OWNER]!.upstreamClose();
  }
  private static onErrorData(this: Owned<IncomingMessage>, chunk: Buffer): void {
    this[OWNER]!.errorData(chunk);
  }
  private static onErrorEnd(this: Owned<IncomingMessage>): void {
    this[OWNER]!.errorEnd();
  }
  private static onUpgrade(this: Owned<ClientRequest>, _res: IncomingMessage, socket: Socket): void {
    // The socket is the gateway's to close now: Node handed it over with the 101.
    socket.destroy();
    this[OWNER]?.interim(101);
  }
  private static onInformation(this: Owned<ClientRequest>, info: { statusCode: number }): void {
    // 100 Continue and 103 Early Hints come before a real answer; any other 1xx never ends in one.
    if (info.statusCode !== 100 && info.statusCode !== 103) this[OWNER]?.interim(info.statusCode);
  }
  private static onDrain(this: Owned<ServerResponse>): void {
    const attempt = this[OWNER];
    this[OWNER] = undefined;
    attempt?.drain();
  }
  private static onTimeout(attempt: Attempt): void {
    attempt.timeout();
  }
  private static onHoldTimeout(attempt: Attempt): void {
    attempt.holdTimeout();
  }
  private static onResponseClose(this: Owned<ServerResponse>): void {
    const attempt = this[OWNER];
    this[OWNER] = undefined;
    attempt?.stopSendClock();
  }
  private static onSendTimeout(attempt: Attempt): void {
    attempt.sendTimeout();
  }
  private static onTotalTimeout(attempt: Attempt): void {
    attempt.totalTimeout();
  }

  /** http-proxy-3 created the upstream request and gave it a socket. */
  onProxyReq(proxyReq: ClientRequest): void {
    this.proxyReq = proxyReq;
    if (this.phase === 'settled') {
      proxyReq.destroy();
      return;
    }
    (proxyReq as Owned<ClientRequest>)[OWNER] = this;
    proxyReq.on('upgrade', Attempt.onUpgrade);
    proxyReq.on('information', Attempt.onInformation);
    const socket = proxyReq.socket as Owned<Socket> | null;
    if (socket === null || !socket.connecting) return this.connected();
    socket[OWNER] = this;
    socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', Attempt.onConnected);
  }

  private connected(): void {
    if (this.phase !== 'connect') return;
    this.phase = 'firstByte';
    this.arm(this.upstream.timeouts.firstByte);
  }

  /** Whether this response answers this attempt's request (and not an earlier, cancelled one). */
  owns(proxyRes: IncomingMessage): boolean {
    return (proxyRes as IncomingMessage & { req?: ClientRequest }).req === this.proxyReq;
  }

  /** Response headers arrived. */
  onResponse(proxyRes: IncomingMessage): void {
    if (this.phase === 'settled') {
      proxyRes.destroy();
      return;
    }
    this.proxyRes = proxyRes;
    this.phase = 'body';
    this.arm(this.upstream.timeouts.idle);
    const ctx = this.ctx;
    const status = proxyRes.statusCode ?? 502;
    const sse = (proxyRes.headers['content-type'] ?? '').startsWith('text/event-stream');
    ctx.responseHeaders = clientResponseHeaders(proxyRes.headers, sse);
    this.deps.hooks.upstreamResponse.call(ctx, this.upstream, proxyRes);
    (proxyRes as Owned<IncomingMessage>)[OWNER] = this;
    proxyRes.on('error', Attempt.onUpstreamError);
    proxyRes.on('close', Attempt.onUpstreamClose);
    if (status >= 400) {
      this.errorChunks = [];
      proxyRes.on('data', Attempt.onErrorData);
      proxyRes.on('end', Attempt.onErrorEnd);
      return;
    }
    // A 101 without an Upgrade header reaches here as a response (with one, see onUpgrade).
    if (status < 200) return this.interim(status);
    const jsonApi = ctx.route?.jsonBody === true;
    const stream = ctx.stream && ctx.route?.unary !== true;
    const unreadable = unreadableBody(proxyRes.headers, sse, jsonApi, status, stream);
    if (unreadable !== undefined)
      return this.fail(new UpstreamMalformedError(unreadable, { phase: 'headers' }));
    if (sse) this.framer = new SseFramer(this.deps.maxEventBytes);
    else if (jsonApi) {
      // Held until complete: an empty, cut or non-JSON answer is still an error before any output.
      const declared = Number(proxyRes.headers['content-length']);
      if (declared > this.deps.maxEventBytes) return this.fail(this.jsonTooLarge('headers'));
      this.jsonChunks = [];
    }
    // The head goes out with the first body byte: an upstream that fails before sending any body
    // gets an HTTP error, never a 200 stream whose first event is a failure (protocol §5 case 8).
    this.status = status;
    proxyRes.on('data', Attempt.onData);
    proxyRes.on('end', Attempt.onEnd);
  }

  /** An interim (1xx) status that no final answer follows on a plain request. */
  private interim(status: number): void {
    if (this.phase === 'settled') return;
    const name = STATUS_CODES[status] ?? 'interim response';
    this.fail(
      new UpstreamMalformedError(
        status === 101
          ? 'upstream answered HTTP 101 Switching Protocols to a plain request'
          : `upstream answered HTTP ${status} ${name}, an interim status with no answer after it`,
        { phase: 'headers' },
      ),
    );
  }

  /** A socket error reported by http-proxy-3 (connect refused, reset, hang up). */
  onTransportError(err: Error): void {
    if (this.phase === 'settled') return;
    const phase = this.phase === 'body' ? 'stream' : this.phase === 'connect' ? 'connect' : 'headers';
    this.fail(fromSocketError(err as NodeJS.ErrnoException, phase));
  }

  /** The client went away: stop everything, never retry. */
  cancel(): void {
    if (this.phase === 'settled') return;
    this.settle({ kind: 'aborted' });
    this.destroyUpstream();
  }

  // --- body relay -------------------------------------------------------------------------

  private data(chunk: Buffer): void {
    if (this.phase !== 'body') return; // draining after a terminal event
    this.timer?.refresh();
    const ctx = this.ctx;
    if (this.jsonChunks !== undefined) return this.holdJson(chunk);
    let ok: boolean;
    if (this.framer === undefined) {
      this.commit();
      ok = ctx.res.write(chunk);
    } else {
      // Held text from an earlier chunk would make this chunk's output differ from its bytes.
      const cleanBefore = this.boundaryClean && this.held.length === 0;
      this.exact = true;
      try {
        this.framer.push(chunk, this);
      } catch (err) {
        this.stopped =
          err instanceof SseFrameTooLargeError
            ? new UpstreamTooLargeError(err.message, { phase: 'stream' })
            : err instanceof GatewayError
              ? err
              : new InternalError('stream processing failed', { cause: err, phase: 'stream' });
      }
      const out = this.out;
      this.out = '';
      // A chunk of whole frames, each forwarded unchanged, goes out as the bytes that came in:
      // no re-encoding of the text.
      const cleanAfter = this.framer.idle && this.held.length === 0 && endsWithBlankLine(chunk);
      // The hold's clock starts only if something is still held once the chunk is read.
      if (this.held.length > 0)
        this.holdTimer ??= setTimeout(Attempt.onHoldTimeout, this.deps.hold.maxTime, this);
      this.boundaryClean = cleanAfter;
      if (out.length > 0) this.commit();
      ok = out.length === 0 ? true : ctx.res.write(this.exact && cleanBefore && cleanAfter ? chunk : out);
    }
    // Before a stop too: a terminal event in a full buffer still needs the client to drain it.
    if (!ok) this.pause();
    if (this.stopped !== undefined) this.afterStop();
  }

  /** One complete frame from the framer. */
  frame(raw: string): void {
    if (this.stopped !== undefined) {
      this.exact = false;
      return;
    }
    const parsed = parseFrame(raw);
    if (parsed === undefined) {
      // Comments pass through, in order.
      if (this.holding) this.held += raw;
      else this.out += raw;
      return;
    }
    const ev = this.deps.hooks.streamEvent.call(parsed, this.ctx);
    if (ev.fail !== undefined) {
      // This frame is not forwarded, so the chunk's bytes are not the output any more.
      this.exact = false;
      this.stopped = ev.fail;
      return;
    }
    const text = ev.drop === true ? '' : (ev.raw ?? serializeEvent(ev));
    if (text !== raw) this.exact = false;
    if (this.holding) {
      // A dropped event shows the client nothing, so it does not end the hold either.
      // Holding only delays: released within the same chunk, the bytes still go out as received.
      if ((ev.hold === true || ev.drop === true) && ev.terminal !== true) {
        this.hold(text);
        return;
      }
      this.releaseHold();
    }
    this.out += text;
    if (ev.terminal === true) {
      this.ctx.terminated = true;
      this.stopped = true;
      // The client reads the upstream's own failure; the request still failed, and is logged so.
      if (ev.failure !== undefined) this.ctx.error ??= ev.failure;
    }
  }

  /** Keeps a pre-output event back, so a failure before any output can still fail over. */
  private hold(text: string): void {
    this.held += text;
    this.heldEvents++;
    const bounds = this.deps.hold;
    if (this.heldEvents > bounds.maxEvents || this.held.length > bounds.maxBytes) this.releaseHold();
  }

  private releaseHold(): void {
    this.holding = false;
    if (this.holdTimer !== undefined) {
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
    if (this.held.length > 0) {
      this.out = this.held + this.out;
      this.held = '';
    }
  }

  /** The hold's time bound: what is held goes out now. */
  private holdTimeout(): void {
    this.holdTimer = undefined;
    if (this.phase !== 'body' || !this.holding) return;
    this.releaseHold();
    const out = this.out;
    this.out = '';
    if (out.length === 0) return;
    this.commit();
    if (!this.ctx.res.write(out)) this.pause();
  }

  /** A terminal event was forwarded, or an event asked to fail the stream. */
  private afterStop(): void {
    const stopped = this.stopped!;
    if (stopped === true) {
      this.commit();
      this.ctx.res.end();
      if (this.proxyRes !== undefined) drainAfterTerminal(this.proxyRes);
      this.settle({ kind: 'ok' });
    } else {
      this.destroyUpstream();
      this.fail(stopped);
    }
  }

  /** Keeps a JSON answer's chunk back, within maxEventBytes. */
  private holdJson(chunk: Buffer): void {
    this.jsonChunks!.push(chunk);
    this.jsonBytes += chunk.length;
    if (this.jsonBytes > this.deps.maxEventBytes) this.fail(this.jsonTooLarge('stream'));
  }

  private jsonTooLarge(phase: 'headers' | 'stream'): GatewayError {
    return new UpstreamTooLargeError(`upstream JSON answer over ${this.deps.maxEventBytes} bytes`, { phase });
  }

  /** The held JSON answer is complete: checked, then sent whole with its length. */
  private endJson(chunks: Buffer[]): void {
    const status = this.status;
    const why = notJsonBody(chunks, this.jsonBytes, status);
    if (why !== undefined) return this.fail(new UpstreamMalformedError(why, { phase: 'stream' }));
    this.jsonChunks = undefined;
    const ctx = this.ctx;
    const bodyHook = this.deps.hooks.responseBody;
    if (bodyHook.isUsed()) bodyHook.call(ctx, chunks);
    (ctx.responseHeaders ??= {})['content-length'] = this.jsonBytes;
    this.commit();
    // The chunks as received, in one corked write: no copy into one buffer.
    const res = ctx.res;
    res.cork();
    for (const chunk of chunks) res.write(chunk);
    res.end();
    this.settle({ kind: 'ok' });
  }

  private end(): void {
    if (this.phase !== 'body') return;
    if (this.jsonChunks !== undefined) return this.endJson(this.jsonChunks);
    if (this.framer !== undefined) {
      const rest = this.framer.rest(this);
      // A frame whose blank line ended in the body's last byte (a CR) completes only now.
      if (this.out.length > 0 || this.stopped !== undefined) {
        const out = this.out;
        this.out = '';
        if (out.length > 0) {
          this.commit();
          this.ctx.res.write(out);
        }
        if (this.stopped !== undefined) return this.afterStop();
      }
      if (rest.trim().length > 0) {
        // The stream ended inside a frame: that frame never completed.
        return this.fail(
          new UpstreamMalformedError('upstream ended the stream in the middle of an event', {
            phase: 'stream',
          }),
        );
      }
      if (this.ctx.route?.requiresTerminalEvent === true && !this.ctx.terminated) {
        return this.fail(new UpstreamIncompleteStreamError(undefined, { phase: 'stream' }));
      }
    }
    this.commit();
    this.ctx.res.end();
    this.settle({ kind: 'ok' });
  }

  private upstreamError(err: Error): void {
    if (this.phase === 'settled') return;
    this.fail(fromSocketError(err as NodeJS.ErrnoException, 'stream'));
  }

  /** http-proxy-3 does not report an upstream that dies mid-response; this guard does. */
  private upstreamClose(): void {
    if (this.phase === 'settled' || this.proxyRes?.complete === true) return;
    this.fail(new UpstreamConnectionLostError(undefined, { phase: 'stream' }));
  }

  /** Sends the response head, once, just before the first byte (or the end of an empty body). */
  private commit(): void {
    const ctx = this.ctx;
    if (ctx.firstByteAt !== undefined) return;
    // In the queue's keepalive mode the head went out already, with the gateway's own events.
    if (!ctx.res.headersSent) ctx.res.writeHead(this.status, ctx.responseHeaders);
    ctx.firstByteAt = performance.now();
    this.deps.hooks.firstByte.call(ctx);
  }

  private pause(): void {
    const res = this.ctx.res;
    this.proxyRes?.pause();
    // A client that reads slowly is not an upstream stall: stop the idle clock meanwhile. The
    // client's own clock runs instead, so one that never reads does not hold the slot forever.
    this.disarm();
    const ms = this.deps.sendTimeout;
    if (ms > 0) this.sendTimer ??= setTimeout(Attempt.onSendTimeout, ms, this);
    (res as Owned<typeof res>)[OWNER] = this;
    res.once('drain', Attempt.onDrain);
  }

  private drain(): void {
    this.stopSendClock();
    if (this.phase !== 'body') return;
    this.arm(this.upstream.timeouts.idle);
    this.proxyRes?.resume();
  }

  private stopSendClock(): void {
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
  }

  /** The client left written output undrained for server.sendTimeout. */
  private sendTimeout(): void {
    this.sendTimer = undefined;
    const ms = this.deps.sendTimeout;
    if (this.phase !== 'settled') {
      // The pipeline drops the connection: a terminal event would only join the undrained output.
      this.fail(
        new ClientStalledError(
          `Client did not read the response for ${formatDuration(ms)} (server.sendTimeout)`,
          { phase: 'stream' },
        ),
      );
      return;
    }
    // Settled (a terminal event, or a failure the pipeline wrote) into output the client never drained.
    const res = this.ctx.res;
    if (res.writableFinished || res.destroyed) return;
    this.ctx.log.info(
      { sendTimeoutMs: ms },
      'client did not read the end of its response within server.sendTimeout: connection dropped',
    );
    res.destroy();
  }

  /** The request's total time limit passed: whatever phase this attempt is in, it ends now. */
  private totalTimeout(): void {
    this.totalTimer = undefined;
    const phase = this.phase;
    if (phase === 'settled') return;
    this.fail(
      requestTotalTimeout(
        this.upstream.timeouts.total,
        phase === 'body' ? 'stream' : phase === 'connect' ? 'connect' : 'headers',
      ),
    );
  }

  // --- error responses ------------------------------------------------------------------

  private errorData(chunk: Buffer): void {
    this.timer?.refresh();
    if (this.errorBytes >= MAX_ERROR_BODY) return;
    this.errorChunks!.push(chunk);
    this.errorBytes += chunk.length;
  }

  private errorEnd(): void {
    if (this.phase === 'settled') return;
    const res = this.proxyRes!;
    const body = Buffer.concat(this.errorChunks!);
    this.fail(upstreamHttpError(res, body));
  }

  // --- plumbing ---------------------------------------------------------------------------

  private fail(error: GatewayError): void {
    if (this.phase === 'settled') return;
    const committed = this.ctx.firstByteAt !== undefined;
    if (this.out.length > 0 && committed) {
      // Events parsed before the failure still reach the client, in order, before the terminal one.
      this.ctx.res.write(this.out);
      this.out = '';
    }
    this.destroyUpstream();
    this.settle({ kind: 'failed', error, committed });
  }

  private settle(result: AttemptResult): void {
    if (this.phase === 'settled') return;
    this.phase = 'settled';
    this.disarm();
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
    if (this.totalTimer !== undefined) clearTimeout(this.totalTimer);
    // The send clock outlives the attempt while the client still has output to drain: the end of the
    // stream (or the pipeline's terminal event) went into that same buffer. It stops when the
    // response closes (flushed, or destroyed); gone clients need none.
    if (this.sendTimer !== undefined) {
      const res = this.ctx.res as Owned<ServerResponse>;
      if (result.kind === 'aborted' || res.destroyed) this.stopSendClock();
      else {
        res[OWNER] = this;
        res.once('close', Attempt.onResponseClose);
      }
    }
    this.resolve(result);
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = ms > 0 ? setTimeout(Attempt.onTimeout, ms, this) : undefined;
  }

  private disarm(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private timeout(): void {
    this.timer = undefined;
    const phase = this.phase;
    if (phase === 'connect') this.fail(new UpstreamConnectTimeoutError(undefined, { phase: 'connect' }));
    else if (phase === 'firstByte')
      this.fail(new UpstreamFirstByteTimeoutError(undefined, { phase: 'headers' }));
    else if (phase === 'body') this.fail(new UpstreamIdleTimeoutError(undefined, { phase: 'stream' }));
  }

  private destroyUpstream(): void {
    this.disarm();
    this.proxyRes?.destroy();
    this.proxyReq?.destroy();
  }
}

function endsWithBlankLine(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 2 && chunk[n - 1] === 10 && chunk[n - 2] === 10;
}

/** Reads an upstream error body: OpenAI's `{error:{…}}`, Codex's `{detail}`, or anything else. */
function upstreamHttpError(res: IncomingMessage, body: Buffer): UpstreamHttpError {
  const status = res.statusCode ?? 502;
  let message = `Upstream returned HTTP ${status}`;
  let type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'upstream_error' : 'invalid_request_error';
  let code: string | null = null;
  const contentType = res.headers['content-type'] ?? '';
  if (contentType.includes('json') || body[0] === 0x7b) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      const err = (parsed.error ?? parsed) as Record<string, unknown>;
      if (typeof err === 'object' && err !== null) {
        if (typeof err.message === 'string') message = err.message;
        else if (typeof parsed.detail === 'string') message = parsed.detail;
        if (typeof err.type === 'string') type = err.type;
        if (typeof err.code === 'string') code = err.code;
      } else if (typeof err === 'string') {
        message = err;
      }
    } catch {
      message += ' with a malformed JSON body';
    }
  } else if (body.length > 0) {
    message += ` (${contentType.split(';')[0] || 'unknown content type'})`;
  }
  return new UpstreamHttpError(status, res.headers, body, message, type, code);
}
