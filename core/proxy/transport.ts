/**
 * The proxy transport on http-proxy-3. One proxy server for the process; each call sends one
 * attempt with the upstream's keep-alive agent and the buffered body, and the Attempt handles
 * the response (selfHandleResponse) so nothing is buffered and every failure is typed.
 */
import type { IncomingMessage } from 'node:http';
import type { Stream } from 'node:stream';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { Attempt, type AttemptDeps, type AttemptResult } from './attempt.js';
import type { RequestContext } from '../kernel/context.js';
import type { OutgoingRequest } from '../kernel/types.js';
import type { Upstream } from '../pool/upstream.js';

const ATTEMPT = Symbol('tapgate.attempt');
type TaggedRequest = IncomingMessage & { [ATTEMPT]?: Attempt };

/** Replays a buffered body: http-proxy-3 pipes `options.buffer` into the upstream request. */
class BodySource {
  constructor(private readonly body: Buffer) {}
  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    dest.end(this.body);
    return dest;
  }
}

export class Transport {
  private readonly proxy: ProxyServer;

  constructor(private deps: AttemptDeps) {
    this.proxy = createProxyServer({
      selfHandleResponse: true,
      ignorePath: true,
      changeOrigin: true,
      xfwd: false,
    });
    // Events are routed to the attempt they belong to; a late event from a cancelled attempt is ignored.
    this.proxy.on('proxyReq', (proxyReq, req, _res, options) => {
      const attempt = (req as TaggedRequest)[ATTEMPT];
      if (attempt !== undefined && options.target === attempt.outgoing.url) attempt.onProxyReq(proxyReq);
      else proxyReq.destroy();
    });
    this.proxy.on('proxyRes', (proxyRes, req) => {
      const attempt = (req as TaggedRequest)[ATTEMPT];
      if (attempt !== undefined && attempt.owns(proxyRes)) attempt.onResponse(proxyRes);
      else proxyRes.destroy();
    });
    const onError = (err: Error, req: IncomingMessage, _res: unknown, target: unknown) => {
      const attempt = (req as TaggedRequest)[ATTEMPT];
      if (attempt !== undefined && target === attempt.outgoing.url) attempt.onTransportError(err);
    };
    this.proxy.on('error', onError);
    this.proxy.on('econnreset', onError);
  }

  /** A config reload's bounds (`proxy.maxEventBytes`, `server.sendTimeout`, `proxy.hold`): for new attempts only. */
  configure(next: Omit<AttemptDeps, 'hooks'>): void {
    this.deps = { ...next, hooks: this.deps.hooks };
  }

  send(ctx: RequestContext, upstream: Upstream, outgoing: OutgoingRequest): Promise<AttemptResult> {
    const body = Buffer.isBuffer(outgoing.body) ? outgoing.body : Buffer.from(JSON.stringify(outgoing.body));
    const headers = outgoing.headers;
    headers['content-length'] = String(body.length);
    delete headers['transfer-encoding'];
    const attempt = new Attempt(this.deps, ctx, upstream, outgoing);
    const req = ctx.req as TaggedRequest;
    req[ATTEMPT] = attempt;
    ctx.activeAttempt = attempt;
    // http-proxy-3 copies req.headers into the upstream request synchronously inside web(); the
    // prepared headers stand in for that call only, so the client's own headers never go upstream.
    const clientHeaders = req.headers;
    req.headers = headers;
    try {
      this.proxy.web(req, ctx.res, {
        target: outgoing.url,
        agent: upstream.agent,
        buffer: new BodySource(body) as unknown as Stream,
      });
    } finally {
      req.headers = clientHeaders;
    }
    return attempt.done;
  }

  close(): void {
    this.proxy.close();
  }
}
