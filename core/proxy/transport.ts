/**
 * The upstream leg: each attempt is one request on its upstream's undici pool, with the buffered
 * body, and the Attempt as its handler, so nothing is buffered on the way back and every failure is
 * typed. The prepared headers are the only ones sent: the client's own never go upstream.
 */
import { Attempt, type AttemptDeps, type AttemptResult } from './attempt.js';
import type { RequestContext } from '../kernel/context.js';
import type { OutgoingRequest } from '../kernel/types.js';
import type { Upstream } from '../pool/upstream.js';

/** Framing headers the transport owns (undici refuses them from a caller); a plugin's copy is dropped. */
const TRANSPORT_OWNED = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'host'];

export class Transport {
  constructor(private deps: AttemptDeps) {}

  /** A config reload's bounds (`proxy.maxEventBytes`, `server.sendTimeout`, `proxy.hold`): for new attempts only. */
  configure(next: Omit<AttemptDeps, 'hooks'>): void {
    this.deps = { ...next, hooks: this.deps.hooks };
  }

  send(ctx: RequestContext, upstream: Upstream, outgoing: OutgoingRequest): Promise<AttemptResult> {
    const body = Buffer.isBuffer(outgoing.body) ? outgoing.body : Buffer.from(JSON.stringify(outgoing.body));
    const headers = outgoing.headers;
    for (const name of TRANSPORT_OWNED) if (name in headers) delete headers[name];
    headers['content-length'] = String(body.length);
    const attempt = new Attempt(this.deps, ctx, upstream, outgoing);
    ctx.activeAttempt = attempt;
    const url = outgoing.url;
    upstream.connections.pool.dispatch(
      { path: url.pathname + url.search, method: ctx.method as 'POST', headers, body },
      attempt,
    );
    attempt.dispatched();
    return attempt.done;
  }

  close(): void {}
}
