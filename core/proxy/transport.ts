/**
 * The upstream leg: each attempt is one request on its upstream's undici pool, with the buffered
 * body, and the Attempt as its handler, so nothing is buffered on the way back and every failure is
 * typed. The prepared headers are the only ones sent: the client's own never go upstream.
 * `proxy.transport: http-proxy-3` sends the same attempt through http-proxy-3 instead.
 */
import { Attempt, type AttemptDeps, type AttemptResult } from './attempt.js';
import type { RequestContext } from '../kernel/context.js';
import type { OutgoingRequest } from '../kernel/types.js';
import type { Upstream } from '../pool/upstream.js';
import type { GatewayConfig } from '../config/config-schema.js';
import { HttpProxyTransport } from './http-proxy-transport.js';

export type TransportKind = GatewayConfig['proxy']['transport'];

/** Framing headers the transport owns (undici refuses them from a caller); a plugin's copy is dropped. */
const TRANSPORT_OWNED = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'host'];

export class Transport {
  /** Made on the first attempt http-proxy-3 sends. */
  private httpProxy: HttpProxyTransport | undefined;

  constructor(
    private deps: AttemptDeps,
    private kind: TransportKind = 'undici',
  ) {}

  /**
   * A config reload's bounds (`proxy.maxEventBytes`, `server.sendTimeout`, `proxy.hold`) and
   * `proxy.transport`: for new attempts only (one in flight finishes on the transport it started on).
   */
  configure(next: Omit<AttemptDeps, 'hooks'>, kind: TransportKind = this.kind): void {
    this.deps = { ...next, hooks: this.deps.hooks };
    this.kind = kind;
  }

  send(ctx: RequestContext, upstream: Upstream, outgoing: OutgoingRequest): Promise<AttemptResult> {
    const body = Buffer.isBuffer(outgoing.body) ? outgoing.body : Buffer.from(JSON.stringify(outgoing.body));
    const headers = outgoing.headers;
    for (const name of TRANSPORT_OWNED) if (name in headers) delete headers[name];
    headers['content-length'] = String(body.length);
    const attempt = new Attempt(this.deps, ctx, upstream, outgoing);
    ctx.activeAttempt = attempt;
    if (this.kind === 'http-proxy-3') {
      (this.httpProxy ??= new HttpProxyTransport()).send(ctx, upstream, attempt, headers, body);
      attempt.dispatched();
      return attempt.done;
    }
    const url = outgoing.url;
    upstream.connections.pool.dispatch(
      { path: url.pathname + url.search, method: ctx.method as 'POST', headers, body },
      attempt,
    );
    attempt.dispatched();
    return attempt.done;
  }

  close(): void {
    this.httpProxy?.close();
  }
}
