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

/** Client credentials and routing headers a client could use to steer the gateway. */
export const CLIENT_ONLY = new Set([
  'authorization',
  'x-api-key',
  'host',
  'cookie',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'content-length',
  'expect',
]);

/**
 * The client's headers that may go upstream: everything but hop-by-hop headers (including any the
 * client named in `Connection`), credentials and routing headers.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const connection = headers.connection;
  const named = connection
    ? connection
        .toLowerCase()
        .split(',')
        .map((s) => s.trim())
    : undefined;
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name)) continue;
    if (named !== undefined && named.includes(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** The upstream's response headers as the client should see them. */
export function clientResponseHeaders(
  headers: IncomingHttpHeaders,
  dropLength: boolean,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name === 'set-cookie') continue;
    if (dropLength && name === 'content-length') continue;
    out[name] = headers[name];
  }
  return out;
}
