/** Header hygiene shared by both directions of the proxy. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and others that must never cross the proxy. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Client credentials, and routing headers a client could use to steer the gateway or a proxy in
 * front of the upstream (to another host, path or method, with the upstream's credentials).
 */
export const CLIENT_ONLY = new Set([
  'authorization',
  'x-api-key',
  'host',
  'cookie',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-host',
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-real-ip',
  'content-length',
  'expect',
  // Billing: the gateway owns the account, so a client does not choose whose organization or project
  // pays (an upstream type may allow it; see openai-upstream's passBillingHeaders).
  'openai-organization',
  'openai-project',
]);

/**
 * Whether a header name with underscores spells a header the gateway must drop: `content_length`,
 * `transfer_encoding` or `x_forwarded_host` become their dashed twins in servers and CGI-style
 * frameworks that fold `_` into `-`, which would let a client smuggle framing or routing past the
 * filters above.
 */
function underscoreTwin(name: string): boolean {
  if (name.indexOf('_') < 0) return false;
  const dashed = name.replace(/_/g, '-');
  return HOP_BY_HOP.has(dashed) || CLIENT_ONLY.has(dashed);
}

/**
 * Upstream response headers that speak for the origin that sends them, and so are not the upstream's
 * to set on the gateway's origin: redirects and content locations (which would point clients at the
 * upstream's host), CORS grants (the gateway's own policy is to send none), authentication challenges
 * (they are about the gateway's upstream credentials, not the client's), and origin-wide policies
 * (HSTS, Alt-Svc, Clear-Site-Data, Refresh). `set-cookie` likewise. `access-control-*` is matched by
 * prefix.
 */
export const ORIGIN_ONLY = new Set([
  'set-cookie',
  'set-cookie2',
  'location',
  'content-location',
  'refresh',
  'www-authenticate',
  'strict-transport-security',
  'alt-svc',
  'clear-site-data',
  'public-key-pins',
  'public-key-pins-report-only',
  'origin-agent-cluster',
]);

/**
 * The client's headers that may go upstream: everything but hop-by-hop headers (including any the
 * client named in `Connection`), credentials and routing headers.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const named = connectionNamed(headers);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name) || underscoreTwin(name)) continue;
    if (named !== undefined && named.includes(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/**
 * The upstream's response headers as the client should see them: no hop-by-hop ones (those its
 * `Connection` names included), none of ORIGIN_ONLY.
 */
export function clientResponseHeaders(
  headers: IncomingHttpHeaders,
  dropLength: boolean,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionNamed(headers);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || ORIGIN_ONLY.has(name) || name.startsWith('access-control-')) continue;
    if (named !== undefined && named.includes(name)) continue;
    if (dropLength && name === 'content-length') continue;
    out[name] = headers[name];
  }
  return out;
}

/** The names a `Connection` header lists: hop-by-hop for this one connection (RFC 9110 §7.6.1). */
function connectionNamed(headers: IncomingHttpHeaders): string[] | undefined {
  const connection = headers.connection;
  // The usual values name no other header (and both are hop-by-hop themselves).
  if (connection === 'keep-alive' || connection === 'close') return undefined;
  return connection
    ? connection
        .toLowerCase()
        .split(',')
        .map((s) => s.trim())
    : undefined;
}

/** Asked of every upstream: the gateway reads bodies (SSE frames, error JSON), so it takes them unencoded. */
export const UPSTREAM_ACCEPT_ENCODING = 'identity';

/**
 * Why a successful upstream answer cannot go to the client, or undefined when it can. An event
 * stream in any content-coding cannot be framed. On a JSON API route: a coding the gateway did not
 * ask for, a redirect (never relayed: it points at the upstream's side), a streamed request answered
 * without an event stream, or a body that is neither JSON nor an event stream (an HTML page from a
 * proxy) is not the API's answer. A missing content-type is let through (the body is checked).
 */
export function unreadableBody(
  headers: IncomingHttpHeaders,
  sse: boolean,
  jsonApi: boolean,
  status = 200,
  stream = false,
): string | undefined {
  const encoding = headers['content-encoding']?.trim().toLowerCase().slice(0, 64);
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity' && (sse || jsonApi))
    return `upstream sent its answer in content-encoding "${encoding}", which the gateway did not ask for and cannot read`;
  if (!jsonApi || sse) return undefined;
  if (status >= 300 && status !== 304)
    return `upstream answered HTTP ${status} (a redirect), which the gateway does not follow`;
  const type = headers['content-type'];
  const shown = type?.split(';')[0]!.trim().slice(0, 64);
  if (stream)
    return shown === undefined || shown === '' || status !== 200
      ? `upstream answered a streamed request with HTTP ${status}${shown ? ` (${shown})` : ''} and no event stream`
      : `upstream answered a streamed request with ${shown}, not an event stream`;
  if (type !== undefined && !/^application\/(.+\+)?json\b/i.test(type.trim()))
    return `upstream answered with ${shown}, not JSON or an event stream`;
  return undefined;
}

/**
 * Why a held JSON answer is not one, or undefined when it looks like one: not empty, its first and
 * last non-blank bytes `{` and `}`. Structural only: the body is not parsed again.
 */
export function notJsonBody(chunks: Buffer[], bytes: number, status: number): string | undefined {
  const first = edgeByte(chunks, true);
  if (bytes === 0 || first === undefined)
    return `upstream answered HTTP ${status} with an empty body, not a Response`;
  if (first !== 0x7b || edgeByte(chunks, false) !== 0x7d)
    return `upstream answered HTTP ${status} with a body that is not JSON`;
  return undefined;
}

/** The first (or last) byte of the chunks that is not JSON whitespace. */
function edgeByte(chunks: Buffer[], fromStart: boolean): number | undefined {
  for (let c = 0; c < chunks.length; c++) {
    const chunk = chunks[fromStart ? c : chunks.length - 1 - c]!;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[fromStart ? i : chunk.length - 1 - i]!;
      if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return b;
    }
  }
  return undefined;
}

/** Query parameters that carry a credential (`?api_key=`, `?access_token=`…): never forwarded. */
const CREDENTIAL_PARAM = /^(?:api[-_]?key|key|access[-_]?token|token|auth|authorization|secret|password)$/i;

/** A query string (with its `?`) minus credential parameters; unchanged when it has none. */
export function withoutCredentials(search: string): string {
  const params = new URLSearchParams(search);
  let dropped = false;
  for (const name of [...params.keys()])
    if (CREDENTIAL_PARAM.test(name)) {
      params.delete(name);
      dropped = true;
    }
  if (!dropped) return search;
  const rest = params.toString();
  return rest === '' ? '' : '?' + rest;
}
