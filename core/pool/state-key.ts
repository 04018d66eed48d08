/**
 * Keys and text a client chooses (session ids, `prompt_cache_key`s, model names, an upstream's
 * reason quoting them) outlive the request in pool state: a binding lives for the affinity TTL, a
 * cooldown until it ends. Whatever a client sends, each costs a bounded amount of memory. Every
 * store (the in-memory one, a shared one later) bounds what it keeps with these two functions.
 */
import { createHash } from 'node:crypto';
import { MAX_ECHO_CHARS, truncate } from '../observe/truncate.js';

/** Keys up to this long are kept as they are: the common path does no hashing. */
export const MAX_STATE_KEY_CHARS = 128;

/**
 * `key` if it is at most MAX_STATE_KEY_CHARS long, else a fixed-size digest of it (50 characters).
 * Idempotent: a digest, being short, maps to itself. A short key spelled like a digest can only
 * match the long key if its sender knows that key, and then it could have sent the key itself.
 */
export function stateKey(key: string): string {
  return key.length <= MAX_STATE_KEY_CHARS
    ? key
    : 'sha256:' + createHash('sha256').update(key).digest('base64url');
}

/**
 * Text kept in state (a reason, a model's label): cut to `max`, then copied. A slice of a string
 * keeps the whole original alive in V8, so a 256-character cut of a 2 MB model name would hold 2 MB.
 */
export function stateText(text: string, max: number = MAX_ECHO_CHARS): string {
  return detached(truncate(text, max));
}

/** A copy of `text` that refers to no other string (a slice or concatenation refers to its parts). */
export function detached(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}
