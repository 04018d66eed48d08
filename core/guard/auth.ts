/** Client authentication: `Authorization: Bearer <key>` or `x-api-key`, compared in constant time. */
import crypto, { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

interface KeyEntry {
  name: string;
  digest: Buffer;
}

// Node ≥ 20.12 has a one-shot hash that skips the Hash object; fall back to it otherwise.
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash;
const digest =
  oneShot !== undefined
    ? (s: string) => oneShot('sha256', s, 'buffer')
    : (s: string) => createHash('sha256').update(s).digest();

export class ClientAuth {
  private readonly keys: KeyEntry[];
  /**
   * Keys that already authenticated, by value → name, so a busy client skips the hash. A miss (any
   * unknown string) takes the constant-time path; only a holder of a valid key reaches the cache.
   */
  private readonly known = new Map<string, string>();

  constructor(keys: readonly { name: string; key: string }[]) {
    // Comparing fixed-length digests keeps the time independent of where the strings differ.
    this.keys = keys.map((k) => ({ name: k.name, digest: digest(k.key) }));
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** The name of the matching key, or undefined. Every key is compared, match or not. */
  authenticate(headers: IncomingHttpHeaders): string | undefined {
    const presented = presentedKey(headers);
    if (presented === undefined) return undefined;
    const cached = this.known.get(presented);
    if (cached !== undefined) return cached;
    const d = digest(presented);
    let match: string | undefined;
    for (const k of this.keys) {
      if (timingSafeEqual(d, k.digest) && match === undefined) match = k.name;
    }
    if (match !== undefined && this.known.size < 1024) this.known.set(presented, match);
    return match;
  }
}

/**
 * Connections whose request was refused for its credentials (or throttled). The answer closes the
 * connection, and a request pipelined behind it on the same connection is refused unread.
 */
const refused = new WeakSet<object>();

export function markRefused(socket: object): void {
  refused.add(socket);
}

export function isRefused(socket: object): boolean {
  return refused.has(socket);
}

export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ')
    return auth.slice(7).trim();
  const apiKey = headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey.length > 0 ? apiKey : undefined;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
