/**
 * The login as Codex CLI's auth.json (so the codex upstream, and Codex CLI itself, read it as-is):
 * `OPENAI_API_KEY: null`, the tokens with the ChatGPT account id from the id_token, `last_refresh`.
 * Written atomically with mode 0600, its folder created (0700) if needed; an existing file is kept
 * unless `force`.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic, TargetExistsError } from '../atomic-write.js';
import { validateTokens, type CodexTokens } from '../credentials.js';
import { jwtAccountId } from '../jwt.js';
import { LoginError } from './errors.js';
import type { IssuedTokens } from './oauth.js';

export function authDocument(
  t: IssuedTokens,
  now = Date.now(),
): { doc: Record<string, unknown>; tokens: CodexTokens } {
  const accountId = jwtAccountId(t.idToken);
  if (accountId === undefined)
    throw new LoginError(
      'the id_token has no https://api.openai.com/auth chatgpt_account_id claim: this login has no ChatGPT account to use',
    );
  const raw = {
    id_token: t.idToken,
    access_token: t.accessToken,
    refresh_token: t.refreshToken,
    account_id: accountId,
  };
  let tokens: CodexTokens;
  try {
    // What the codex upstream will check at boot: refuse now rather than write a file it rejects.
    tokens = validateTokens(raw, 'the issued tokens: ');
  } catch (err) {
    throw new LoginError((err as Error).message);
  }
  return { doc: { OPENAI_API_KEY: null, tokens: raw, last_refresh: new Date(now).toISOString() }, tokens };
}

export async function saveLogin(path: string, doc: Record<string, unknown>, force: boolean): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomic(path, JSON.stringify(doc, null, 2) + '\n', undefined, { exclusive: !force });
  } catch (err) {
    if (err instanceof TargetExistsError)
      throw new LoginError(`${path} appeared during the sign-in: kept it; pass --force to replace it`);
    throw new LoginError(
      `writing ${path} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}
