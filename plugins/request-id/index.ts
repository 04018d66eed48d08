/**
 * Request correlation: accepts a sane inbound `X-Request-Id` / `X-Client-Request-Id` or keeps the
 * generated UUID; returns it as `x-request-id`, forwards it upstream, and hands the upstream's own
 * id back as `x-upstream-request-id`. Every log line of the request carries it.
 */
import { Stage, type PluginContext, type TapgatePlugin } from '../../core/index.js';

const NAME = 'request-id';
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function saneRequestId(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && SANE_ID.test(value) ? value : undefined;
}

export default class RequestIdPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME };

  apply(gateway: PluginContext): void {
    const hooks = gateway.hooks;
    const secrets = gateway.secrets;
    hooks.start.tap({ name: NAME, stage: Stage.EARLY }, (ctx) => {
      const headers = ctx.req.headers;
      // A WebSocket's handshake ids name the socket (Codex: its thread): each turn keeps its own.
      const inbound =
        ctx.transport === 'websocket'
          ? undefined
          : (saneRequestId(headers['x-request-id']) ?? saneRequestId(headers['x-client-request-id']));
      // An id is echoed, logged and forwarded upstream: one that is (or holds) a secret is replaced.
      if (inbound !== undefined && !secrets.holdsSecret(inbound)) {
        ctx.id = inbound;
        ctx.resetLogger();
      }
      ctx.res.setHeader('x-request-id', ctx.id);
    });
    hooks.prepareUpstreamRequest.tap({ name: NAME, stage: Stage.LATE }, (outgoing, ctx) => {
      const headers = outgoing.headers;
      headers['x-request-id'] = ctx.id;
      // The client's own correlation id goes upstream only when it is as sane as one we would adopt.
      const clientId = headers['x-client-request-id'];
      if (clientId !== undefined && (saneRequestId(clientId) === undefined || secrets.holdsSecret(clientId)))
        delete headers['x-client-request-id'];
      return outgoing;
    });
    hooks.upstreamResponse.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, _upstream, response) => {
      const upstreamId = response.headers['x-request-id'];
      if (typeof upstreamId === 'string') {
        ctx.upstreamRequestId = upstreamId;
        ctx.res.setHeader('x-upstream-request-id', upstreamId);
      }
      // Our id, not the upstream's, is the client's `x-request-id`.
      if (ctx.responseHeaders !== undefined) delete ctx.responseHeaders['x-request-id'];
    });
  }
}
