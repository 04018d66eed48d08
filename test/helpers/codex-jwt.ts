/** Test JWTs and Codex logins: base64url header and payload, any signature (tapgate never verifies it). */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerSecretsIn } from './secret-scan.js';

export const AUTH_CLAIM = 'https://api.openai.com/auth';

export function makeJwt(payload: Record<string, unknown>): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(payload)}.${Buffer.from('test-signature').toString('base64url')}`;
}

let serial = 0;

/** An access token for `accountId` expiring `expiresInSec` from now. Each call gives a distinct token. */
export function accessToken(accountId: string, expiresInSec = 3600): string {
  return makeJwt({
    exp: Math.floor(Date.now() / 1000) + expiresInSec,
    jti: `at-${++serial}`,
    [AUTH_CLAIM]: { chatgpt_account_id: accountId },
  });
}

export function idToken(accountId: string): string {
  return makeJwt({
    exp: Math.floor(Date.now() / 1000) + 3600,
    email: 'user@example.com',
    jti: `id-${++serial}`,
    [AUTH_CLAIM]: { chatgpt_account_id: accountId, chatgpt_plan_type: 'plus' },
  });
}

export interface CodexLogin {
  id_token?: string;
  access_token: string;
  refresh_token: string;
  account_id?: string;
}

/** Writes a Codex CLI auth.json (mode 0600) and returns its path. */
export function writeAuthFile(
  dir: string,
  tokens: CodexLogin,
  extra: Record<string, unknown> = {},
  name = 'auth.json',
): string {
  const path = join(dir, name);
  const doc = { OPENAI_API_KEY: null, tokens, last_refresh: '2025-01-01T00:00:00.000000000Z', ...extra };
  registerSecretsIn(doc);
  writeFileSync(path, JSON.stringify(doc, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
