/**
 * A request that did not arrive as an HTTP request of its own (a WebSocket turn), run through the
 * same pipeline as one: routing, authentication, limits, selection, failover, the terminal
 * guarantee, usage and the access line. The pipeline and http-proxy-3 read and write the two
 * objects here as they would an IncomingMessage and a ServerResponse; the response hands what is
 * written to an ExchangeSink (the protocol that frames it for its client).
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestContext } from '../kernel/context.js';

/** What a plugin hands `dispatch`: one request, already read. */
export interface InternalRequestInit {
  /** Path and query, matched by `matchRoute` like an HTTP request's (e.g. `/v1/responses`). */
  url: string;
  /** `POST` by default. */
  method?: string;
  /**
   * The request's headers, as an HTTP request's: the core authenticates the client key in them,
   * and forwards what an HTTP request's would be forwarded (never the credentials).
   */
  headers: IncomingHttpHeaders;
  /** The connection it came on: its remote address, and the guard's marks. */
  socket: Socket;
  /** The body the upstream receives. */
  body: Buffer;
  /** `body`, parsed: the pipeline neither reads nor parses it again. */
  json: Record<string, unknown>;
  /** How the client talks to the gateway (plugins read it as `ctx.transport`). */
  transport: 'websocket';
  /** Called with the request's context before any hook runs (to attach the caller's state). */
  onContext?(ctx: RequestContext): void;
}

/** Receives what the pipeline writes for one internal request, in order. */
export interface ExchangeSink {
  /** The response head, once, before any data (status ≥ 400: an error body follows). */
  head(status: number, headers: OutgoingHttpHeaders): void;
  /**
   * Body text or bytes (an event stream's frames, or an error body). Returns false when the client
   * is full: the pipeline stops reading the upstream until `InternalExchange.drained()`.
   */
  data(chunk: string | Buffer): boolean;
  /** The response is complete. */
  end(): void;
  /** The core cut the response where its protocol has no ending (a client that stopped reading). */
  abort(): void;
}

/** One internal request in flight. */
export interface InternalExchange {
  readonly ctx: RequestContext;
  /** The sink has room again after `data` returned false. */
  drained(): void;
  /** The client went away: the attempt stops, its slot is freed, and the request ends as a client abort. */
  cancel(): void;
  /** Settles once the request finished (its `finish` hook ran). */
  readonly done: Promise<void>;
}

/** Stands in for an IncomingMessage whose body has been read. */
export class InternalRequest extends EventEmitter {
  readonly method: string;
  url: string;
  headers: IncomingHttpHeaders;
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly complete = true;
  readonly socket: Socket;
  readonly connection: Socket;

  constructor(init: InternalRequestInit) {
    super();
    this.method = init.method ?? 'POST';
    this.url = init.url;
    this.headers = init.headers;
    this.socket = this.connection = init.socket;
  }
}

/** Stands in for a ServerResponse: what is written goes to the sink. */
export class InternalResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private readonly headers: OutgoingHttpHeaders = {};
  private needDrain = false;
  private closed = false;

  constructor(private readonly sink: ExchangeSink) {
    super();
  }

  /** http-proxy-3 reads the old name. */
  get finished(): boolean {
    return this.writableEnded;
  }

  setHeader(name: string, value: OutgoingHttpHeader): this {
    // Headers set after the head went out have nowhere to go (a ServerResponse would throw).
    if (!this.headersSent) this.headers[name.toLowerCase()] = value;
    return this;
  }

  getHeader(name: string): OutgoingHttpHeader | undefined {
    return this.headers[name.toLowerCase()];
  }

  hasHeader(name: string): boolean {
    return this.headers[name.toLowerCase()] !== undefined;
  }

  removeHeader(name: string): void {
    delete this.headers[name.toLowerCase()];
  }

  getHeaders(): OutgoingHttpHeaders {
    return { ...this.headers };
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    if (this.headersSent) return this;
    this.statusCode = status;
    if (headers !== undefined) for (const name in headers) this.headers[name.toLowerCase()] = headers[name];
    this.headersSent = true;
    this.sink.head(status, this.headers);
    return this;
  }

  write(chunk: string | Buffer): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (chunk.length === 0) return true;
    const ok = this.sink.data(chunk);
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(chunk?: string | Buffer): this {
    if (this.writableEnded || this.destroyed) return this;
    if (chunk !== undefined) this.write(chunk);
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.writableEnded = true;
    this.sink.end();
    this.writableFinished = true;
    this.emit('finish');
    this.close();
    return this;
  }

  /** The core cuts the response: the sink ends it as its protocol can. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (!this.writableFinished) this.sink.abort();
    this.close();
    return this;
  }

  /** The client left: like destroy(), without telling the sink (it knows). */
  clientGone(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.close();
  }

  /** Writes are single buffers already: nothing to batch. */
  cork(): void {}
  uncork(): void {}

  drained(): void {
    if (!this.needDrain) return;
    this.needDrain = false;
    this.emit('drain');
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    // As a ServerResponse does: 'close' after the caller's synchronous work.
    process.nextTick(() => this.emit('close'));
  }
}
