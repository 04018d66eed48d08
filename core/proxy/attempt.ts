/**
 * One upstream attempt, as the undici handler of its request: the timers (connect, first byte, idle),
 * an upstream that dies mid-response, and the relay to the client with backpressure. It never writes
 * an error itself; it reports one, and whether headers had gone out.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { RequestContext } from '../kernel/context.js';
import {
  ClientStalledError,
  fromSocketError,
  GatewayError,
  requestTotalTimeout,
  UpstreamConnectTimeoutError,
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
import type { OutgoingRequest, UpstreamResponseHead } from '../kernel/types.js';
import { formatDuration } from '../config/units.js';
import type { Upstream } from '../pool/upstream.js';
import { readRawHeaders } from './response-head.js';

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
 * Attempts whose upstream response is read to its end after a terminal event (so the keep-alive
 * connection can be reused), each with a deadline. One sweep timer serves them all.
 */
const draining = new Map<Attempt, number>();
let drainSweep: NodeJS.Timeout | undefined;

function sweepDraining(): void {
  const now = Date.now();
  for (const [attempt, deadline] of draining) {
    if (deadline > now) continue;
    draining.delete(attempt);
    attempt.abortUpstream();
  }
  if (draining.size === 0 && drainSweep !== undefined) {
    clearInterval(drainSweep);
    drainSweep = undefined;
  }
}

/** What the upstream's body bytes are for. */
const enum Reading {
  /** Relayed to the client (or held, for a JSON answer). */
  Relay,
  /** An error answer, kept for classification. */
  ErrorBody,
  /** After a terminal event or a cancel: read and dropped. */
  Discard,
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
  /** The running timer's duration: a phase with the same one refreshes it instead of making another. */
  private timerMs = 0;
  /** undici's abort for this request, once it is on a connection. */
  private abortRequest: ((reason: Error) => void) | undefined;
  /** undici's resume, for a response paused by backpressure. */
  private resumeResponse: (() => void) | undefined;
  private paused = false;
  /** The upstream's answer was read to its end. */
  private complete = false;
  private reading = Reading.Relay;
  /** The upstream's answer head, once it arrived. */
  private head: UpstreamResponseHead | undefined;
  /** Still counted in the upstream's `waiting` (no connection yet). */
  private waitingForConnection = true;
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
    upstream.connections.waiting++;
    const total = upstream.timeouts.total;
    if (total > 0) {
      // What a queue wait and earlier attempts used is gone: the deadline is the request's, not this attempt's.
      const left = Math.max(0, ctx.startedAt + total - performance.now());
      this.totalTimer = setTimeout(Attempt.onTotalTimeout, left, this);
    }
  }

  // --- listeners: shared functions that find their attempt on the emitter ------------------

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

  // --- undici's handler: the request's life on its connection ---------------------------

  /**
   * Called once the request is handed to undici: on a kept-alive connection it is on it already
   * (onConnect ran), so the connect clock starts only when a connection has to be opened.
   */
  dispatched(): void {
    if (this.phase === 'connect') this.arm(this.upstream.timeouts.connect);
  }

  /** The request is on a connection and being written. */
  onConnect(abort: (reason: Error) => void): void {
    this.abortRequest = abort;
    this.leaveConnectionQueue();
    if (this.phase === 'settled') {
      // Cancelled while it waited for a connection: it never goes out.
      abort(CANCELLED);
      return;
    }
    if (this.phase !== 'connect') return;
    this.phase = 'firstByte';
    this.arm(this.upstream.timeouts.firstByte);
  }

  /** The answer's status line and headers (an interim 1xx too). Returns false to pause. */
  onHeaders(status: number, raw: Buffer[] | string[] | null, resume: () => void): boolean {
    if (this.phase === 'settled') return true;
    if (status < 200) {
      // 103 Early Hints comes before a real answer; any other 1xx never ends in one here.
      if (status !== 103) this.interim(status);
      return true;
    }
    this.resumeResponse = resume;
    this.response(status, readRawHeaders(raw));
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    const reading = this.reading;
    if (reading === Reading.Relay) this.data(chunk);
    else if (reading === Reading.ErrorBody) this.errorData(chunk);
    return !this.paused;
  }

  onComplete(): void {
    this.complete = true;
    const reading = this.reading;
    if (reading === Reading.Discard) {
      draining.delete(this);
      return;
    }
    if (reading === Reading.ErrorBody) this.errorEnd();
    else this.end();
  }

  /** A socket error (connect refused, reset, an upstream that died mid-answer), or our own abort. */
  onError(err: Error): void {
    draining.delete(this);
    // Our own abort reports back synchronously, before the failure that caused it has settled.
    if (this.phase === 'settled' || err === CANCELLED) return;
    const code = (err as NodeJS.ErrnoException).code;
    // undici's words for a 101 that upgrades a plain request, and for a 100 Continue nobody asked for.
    if (code === 'UND_ERR_SOCKET' && err.message === 'bad upgrade') return this.interim(101);
    const phase = this.phase === 'body' ? 'stream' : this.phase === 'connect' ? 'connect' : 'headers';
    this.fail(fromSocketError(err as NodeJS.ErrnoException, phase));
  }

  /** Response headers arrived. */
  private response(status: number, headers: IncomingHttpHeaders): void {
    this.phase = 'body';
    this.arm(this.upstream.timeouts.idle);
    const ctx = this.ctx;
    const head: UpstreamResponseHead = { statusCode: status, headers };
    this.head = head;
    const sse = (headers['content-type'] ?? '').startsWith('text/event-stream');
    ctx.responseHeaders = clientResponseHeaders(headers, sse);
    this.deps.hooks.upstreamResponse.call(ctx, this.upstream, head);
    if (status >= 400) {
      this.errorChunks = [];
      this.reading = Reading.ErrorBody;
      return;
    }
    const jsonApi = ctx.route?.jsonBody === true;
    const stream = ctx.stream && ctx.route?.unary !== true;
    const unreadable = unreadableBody(headers, sse, jsonApi, status, stream);
    if (unreadable !== undefined)
      return this.fail(new UpstreamMalformedError(unreadable, { phase: 'headers' }));
    if (sse) this.framer = new SseFramer(this.deps.maxEventBytes);
    else if (jsonApi) {
      // Held until complete: an empty, cut or non-JSON answer is still an error before any output.
      const declared = Number(headers['content-length']);
      if (declared > this.deps.maxEventBytes) return this.fail(this.jsonTooLarge('headers'));
      this.jsonChunks = [];
    }
    // The head goes out with the first body byte: an upstream that fails before sending any body
    // gets an HTTP error, never a 200 stream whose first event is a failure (protocol §5 case 8).
    this.status = status;
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
      this.drainAfterTerminal();
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

  /** Reads and drops what follows a terminal event, within DRAIN_GRACE_MS, so the connection is reused. */
  private drainAfterTerminal(): void {
    this.reading = Reading.Discard;
    // Called from onData: its return value un-pauses a response paused on the terminal event's write.
    this.paused = false;
    if (this.complete) return;
    draining.set(this, Date.now() + DRAIN_GRACE_MS);
    drainSweep ??= setInterval(sweepDraining, 250).unref();
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
    this.paused = true;
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
    this.resume();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeResponse?.();
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
    const body = Buffer.concat(this.errorChunks!);
    this.fail(upstreamHttpError(this.head!, body));
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
    this.leaveConnectionQueue();
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
    const timer = this.timer;
    if (timer !== undefined) {
      if (ms === this.timerMs) {
        timer.refresh();
        return;
      }
      clearTimeout(timer);
    }
    this.timerMs = ms;
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

  /** Stops the upstream request: its connection is closed (one that waits for a connection never goes out). */
  private destroyUpstream(): void {
    this.disarm();
    this.reading = Reading.Discard;
    this.abortRequest?.(CANCELLED);
  }

  /** Called by the drain sweep: the rest of the answer took too long. */
  abortUpstream(): void {
    this.abortRequest?.(CANCELLED);
  }

  /** No longer waiting for a connection: a connect that nobody waits for is dropped. */
  private leaveConnectionQueue(): void {
    if (!this.waitingForConnection) return;
    this.waitingForConnection = false;
    const connections = this.upstream.connections;
    connections.waiting--;
    if (this.phase === 'settled' && connections.connecting.size > 0) connections.dropUnwantedConnects();
  }
}

/** The reason undici gets when the gateway stops a request; never shown (the attempt has settled). */
const CANCELLED = new Error('attempt cancelled by the gateway');

function endsWithBlankLine(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 2 && chunk[n - 1] === 10 && chunk[n - 2] === 10;
}

/** Reads an upstream error body: OpenAI's `{error:{…}}`, Codex's `{detail}`, or anything else. */
function upstreamHttpError(res: UpstreamResponseHead, body: Buffer): UpstreamHttpError {
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
