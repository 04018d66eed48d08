/**
 * The upstream leg on http-proxy-3 (`proxy.transport: http-proxy-3`): one proxy server for the process;
 * each attempt goes out with its upstream's keep-alive agent and the buffered body, and an exchange
 * drives the same Attempt the undici transport drives, through its handler methods. What undici
 * notices by itself, the exchange adds: an upstream that dies mid-answer (the response closes before
 * its end), a connect nobody waits for any more, and an abort that reports back as an error.
 */
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Stream } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { createProxyServer, type ProxyServer, type ServerOptions } from 'http-proxy-3';
import type { Attempt } from './attempt.js';
import type { RequestContext } from '../kernel/context.js';
import { UpstreamConnectionLostError } from '../kernel/errors.js';
import type { Upstream } from '../pool/upstream.js';

/** Requests, responses, sockets and call options carry their exchange under this key. */
const EXCHANGE = Symbol('tapgate.exchange');
type Tagged<T> = T & { [EXCHANGE]?: Exchange };

/** Replays a buffered body: http-proxy-3 pipes `options.buffer` into the upstream request. */
class BodySource {
  constructor(private readonly body: Buffer) {}
  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    dest.end(this.body);
    return dest;
  }
}

const noop = (): void => {};

/** One attempt's request on http-proxy-3, seen through the Attempt's handler methods. */
class Exchange {
  private proxyReq: ClientRequest | undefined;
  private proxyRes: IncomingMessage | undefined;
  private connected = false;
  /** The answer completed, or an error was reported: the attempt hears nothing more. */
  private over = false;

  constructor(
    readonly attempt: Attempt,
    readonly target: URL,
  ) {}

  /** The attempt's abort (as undici's): the request and its socket go; reported back as an error. */
  readonly abort = (reason: Error): void => {
    this.proxyRes?.destroy();
    this.proxyReq?.destroy();
    this.error(reason);
  };

  readonly resume = (): void => {
    this.proxyRes?.resume();
  };

  /** http-proxy-3's per-call error callback: connect refused, reset, hang up. */
  readonly onProxyError = (err: Error): void => {
    this.error(err);
  };

  /** The attempt settled: a request still connecting is for nobody now. */
  readonly settled = (): void => {
    if (this.connected) return;
    this.over = true;
    this.proxyReq?.destroy();
  };

  // --- listeners: shared functions that find their exchange on the emitter ----------------

  private static onConnected(this: Tagged<Socket>): void {
    const exchange = this[EXCHANGE];
    this[EXCHANGE] = undefined;
    exchange?.connect();
  }
  private static onInformation(
    this: Tagged<ClientRequest>,
    info: { statusCode: number; rawHeaders: string[] },
  ): void {
    // A 100 Continue nobody asked for is skipped, as undici does; 103 and the others are the attempt's to judge.
    if (info.statusCode !== 100) this[EXCHANGE]?.headers(info.statusCode, info.rawHeaders, noop);
  }
  private static onUpgrade(this: Tagged<ClientRequest>, res: IncomingMessage, socket: Socket): void {
    // Node handed the socket over with the 101: it is ours to close.
    socket.destroy();
    this[EXCHANGE]?.headers(101, res.rawHeaders, noop);
  }
  private static onData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
    const exchange = this[EXCHANGE]!;
    if (!exchange.over && !exchange.attempt.onData(chunk)) this.pause();
  }
  private static onEnd(this: Tagged<IncomingMessage>): void {
    const exchange = this[EXCHANGE]!;
    if (exchange.over) return;
    exchange.over = true;
    exchange.attempt.onComplete();
  }
  private static onResponseError(this: Tagged<IncomingMessage>, err: Error): void {
    this[EXCHANGE]!.error(err);
  }
  /** http-proxy-3 does not report an upstream that dies mid-answer: this guard does. */
  private static onResponseClose(this: Tagged<IncomingMessage>): void {
    this[EXCHANGE]!.error(new UpstreamConnectionLostError(undefined, { phase: 'stream' }));
  }

  /** http-proxy-3 made the upstream request and gave it a socket (maybe still connecting). */
  request(proxyReq: ClientRequest): void {
    this.proxyReq = proxyReq;
    if (this.over) {
      proxyReq.destroy();
      return;
    }
    (proxyReq as Tagged<ClientRequest>)[EXCHANGE] = this;
    proxyReq.on('information', Exchange.onInformation);
    proxyReq.on('upgrade', Exchange.onUpgrade);
    const socket = proxyReq.socket as Tagged<Socket> | null;
    if (socket === null || !socket.connecting) return this.connect();
    socket[EXCHANGE] = this;
    socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', Exchange.onConnected);
  }

  private connect(): void {
    if (this.over || this.connected) return;
    this.connected = true;
    this.attempt.onConnect(this.abort);
  }

  /** The answer's head arrived. */
  response(proxyRes: IncomingMessage): void {
    if (this.over) {
      proxyRes.destroy();
      return;
    }
    this.proxyRes = proxyRes;
    const tagged = proxyRes as Tagged<IncomingMessage>;
    tagged[EXCHANGE] = this;
    proxyRes.on('error', Exchange.onResponseError);
    proxyRes.on('close', Exchange.onResponseClose);
    const go = this.headers(proxyRes.statusCode ?? 502, proxyRes.rawHeaders, this.resume);
    // The attempt may have failed on the head (and aborted): nothing more to read then.
    if (this.over) return;
    proxyRes.on('data', Exchange.onData);
    proxyRes.on('end', Exchange.onEnd);
    if (!go) proxyRes.pause();
  }

  private headers(status: number, raw: string[], resume: () => void): boolean {
    if (this.over) return true;
    return this.attempt.onHeaders(status, raw, resume);
  }

  private error(err: Error): void {
    if (this.over) return;
    this.over = true;
    this.attempt.onError(err);
  }
}

export class HttpProxyTransport {
  private readonly proxy: ProxyServer;

  constructor() {
    this.proxy = createProxyServer({
      selfHandleResponse: true,
      ignorePath: true,
      changeOrigin: true,
      xfwd: false,
    });
    this.proxy.on('proxyReq', (proxyReq, _req, _res, options) => {
      const exchange = (options as Tagged<ServerOptions>)[EXCHANGE];
      if (exchange !== undefined) exchange.request(proxyReq);
      else proxyReq.destroy();
    });
    this.proxy.on('proxyRes', (proxyRes, _req) => {
      const proxyReq = (proxyRes as IncomingMessage & { req?: Tagged<ClientRequest> }).req;
      const exchange = proxyReq?.[EXCHANGE];
      if (exchange !== undefined) exchange.response(proxyRes);
      else proxyRes.destroy();
    });
    // The client's socket was gone when the upstream request failed; errors without a callback too.
    const routed = (err: Error, req: IncomingMessage, _res: unknown, target: unknown): void => {
      const exchange = (req as Tagged<IncomingMessage>)[EXCHANGE];
      if (exchange !== undefined && target === exchange.target) exchange.onProxyError(err);
    };
    this.proxy.on('econnreset', routed);
    this.proxy.on('error', routed);
  }

  /** Sends one attempt: `headers` (prepared, framing fields removed) are the only ones that go upstream. */
  send(
    ctx: RequestContext,
    upstream: Upstream,
    attempt: Attempt,
    headers: IncomingHttpHeaders,
    body: Buffer,
  ): void {
    const target = attempt.outgoing.url;
    const exchange = new Exchange(attempt, target);
    void attempt.done.then(exchange.settled);
    const req = ctx.req as Tagged<IncomingMessage>;
    req[EXCHANGE] = exchange;
    const options: Tagged<ServerOptions> = {
      target,
      method: ctx.method,
      agent: upstream.connections.agent,
      buffer: new BodySource(body) as unknown as Stream,
      [EXCHANGE]: exchange,
    };
    // http-proxy-3 copies req.headers into the upstream request synchronously inside web(); the
    // prepared headers stand in for that call only, so the client's own headers never go upstream.
    const clientHeaders = req.headers;
    req.headers = headers;
    try {
      this.proxy.web(req, ctx.res, options, exchange.onProxyError);
    } finally {
      req.headers = clientHeaders;
    }
  }

  close(): void {
    this.proxy.close();
  }
}
