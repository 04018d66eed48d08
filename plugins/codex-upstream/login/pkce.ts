/**
 * PKCE (RFC 7636) with S256, and the `state` value, as Codex CLI makes them: 64 random bytes as
 * base64url give an 86-character verifier, inside the 43–128 RFC 7636 allows, of unreserved characters.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface Pkce {
  verifier: string;
  /** base64url(sha256(verifier)), unpadded. */
  challenge: string;
}

export function challengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export function createPkce(): Pkce {
  const verifier = randomBytes(64).toString('base64url');
  return { verifier, challenge: challengeOf(verifier) };
}

/** An unguessable `state`: the callback must echo it, so a forged redirect is refused. */
export function createState(): string {
  return randomBytes(32).toString('base64url');
}
