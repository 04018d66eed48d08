/**
 * An upstream response's status and headers, as the `upstreamResponse` hook and the relay read them:
 * undici hands over raw name/value buffers, read here once into Node's `IncomingHttpHeaders` shape
 * (lower-case names; `set-cookie` an array; a repeated single-value field keeps its first value; any
 * other repeated field joined with ", ").
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { UpstreamResponseHead } from '../kernel/types.js';

/** Fields Node keeps the first of when repeated (as `IncomingMessage.headers` does). */
const SINGLE = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** Reads undici's `[name, value, name, value…]` buffers into a header object. */
export function readRawHeaders(raw: readonly (Buffer | string)[] | null | undefined): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  if (raw === null || raw === undefined) return headers;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = lowerName(raw[i]!);
    const value = raw[i + 1]!.toString('latin1');
    const had = headers[name];
    if (had === undefined) {
      headers[name] = name === 'set-cookie' ? [value] : value;
    } else if (Array.isArray(had)) {
      had.push(value);
    } else if (!SINGLE.has(name)) {
      headers[name] = had + ', ' + value;
    }
  }
  return headers;
}

/** A header name in lower case, without a second string when it already is (the usual case). */
function lowerName(raw: Buffer | string): string {
  const name = raw.toString('latin1');
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}

export function responseHead(statusCode: number, headers: IncomingHttpHeaders): UpstreamResponseHead {
  return { statusCode, headers };
}
