/**
 * Codex credentials: read from Codex CLI's own auth.json (as-is) or from inline config tokens,
 * validated at boot with errors that name the file or key and never quote a token; and written
 * back to the file after a refresh, atomically, keeping the file's other fields.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { PluginError, unsafeHeaderChar } from '../../core/index.js';
import { writeFileAtomic } from './atomic-write.js';
import { jwtAccountId, jwtExpiryMs } from './jwt.js';
import type { CodexTokensConfig } from './schema.js';
import { parseJsonObject } from './json-object.js';

/** A boot error in a codex upstream's credentials. Its message never contains token text. */
export class CodexCredentialsError extends PluginError {
  override name = 'CodexCredentialsError';
}

export interface CodexTokens {
  accessToken: string;
  refreshToken: string;
  idToken: string | undefined;
  accountId: string;
  /** The access token's `exp`, epoch ms. */
  expiresAt: number;
}

/** `~` and `~/…` expand to the home directory; relative paths resolve against `baseDir` (the config file's). */
export function expandHome(path: string, baseDir: string = process.cwd()): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return resolve(homedir(), path.slice(2));
  return resolve(baseDir, path);
}

export interface AuthFile {
  tokens: CodexTokens;
  /** The whole parsed file, so a write-back keeps the fields tapgate does not know. */
  doc: Record<string, unknown>;
}

/** Reads and validates an auth.json at boot (synchronously: upstream `init` is synchronous). */
export function loadAuthFile(upstream: string, path: string): AuthFile {
  const where = `codex upstream "${upstream}": auth file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    const hint = code === 'ENOENT' ? ': log in with `codex login`, or fix the path' : '';
    throw new CodexCredentialsError(`${where} cannot be read (${code})${hint}`);
  }
  const doc = parseJsonObject(text);
  // JSON.parse's own message quotes the input, which may be a token: never pass it on.
  if (doc === undefined)
    throw new CodexCredentialsError(`${where} is not valid JSON (a JSON object is expected)`);
  if (typeof doc.tokens !== 'object' || doc.tokens === null || Array.isArray(doc.tokens)) {
    const apiKey = typeof doc.OPENAI_API_KEY === 'string' && doc.OPENAI_API_KEY.length > 0;
    throw new CodexCredentialsError(
      apiKey
        ? `${where} holds an API-key login (OPENAI_API_KEY) and no ChatGPT tokens: use an upstream of type openai, or log in with \`codex login\``
        : `${where} has no "tokens" object: log in with \`codex login\``,
    );
  }
  return { tokens: validateTokens(doc.tokens as Record<string, unknown>, `${where}: tokens.`), doc };
}

/** Validates inline `tokens:` from config.yaml. */
export function loadInlineTokens(upstream: string, tokens: CodexTokensConfig): CodexTokens {
  return validateTokens(tokens, `codex upstream "${upstream}": tokens.`);
}

/** Checks tokens as the upstream will use them; `at` prefixes each message (which never quotes a token). */
export function validateTokens(raw: Record<string, unknown>, at: string): CodexTokens {
  const str = (key: string): string | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new CodexCredentialsError(`${at}${key} must be a string`);
    return v.length > 0 ? v : undefined;
  };
  const accessToken = str('access_token');
  const refreshToken = str('refresh_token');
  const idToken = str('id_token');
  if (accessToken === undefined) throw new CodexCredentialsError(`${at}access_token is missing or empty`);
  if (refreshToken === undefined) throw new CodexCredentialsError(`${at}refresh_token is missing or empty`);
  const expiresAt = jwtExpiryMs(accessToken);
  if (expiresAt === undefined)
    throw new CodexCredentialsError(
      `${at}access_token is not a JWT with an exp claim, so its expiry cannot be read (corrupt or truncated?)`,
    );
  const accountId =
    str('account_id') ??
    (idToken === undefined ? undefined : jwtAccountId(idToken)) ??
    jwtAccountId(accessToken);
  if (accountId === undefined) {
    const idNote =
      idToken === undefined
        ? 'there is no id_token'
        : 'the id_token has no https://api.openai.com/auth chatgpt_account_id claim (or is not a JWT)';
    throw new CodexCredentialsError(`${at}account_id is missing and ${idNote}`);
  }
  // Both go out in headers on every request: a value Node cannot send would fail each one with a 500.
  for (const [key, value] of [
    ['access_token', accessToken],
    ['account_id', accountId],
  ] as const) {
    const bad = unsafeHeaderChar(value, false);
    if (bad !== undefined) throw new CodexCredentialsError(`${at}${key} ${bad}`);
  }
  return { accessToken, refreshToken, idToken, accountId, expiresAt };
}

/** The file's current contents, or undefined when it cannot be read or parsed right now. */
export async function readAuthDoc(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return parseJsonObject(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The tokens in a doc read at run time, or undefined when they are unusable (no boot errors here). */
export function tokensOfDoc(doc: Record<string, unknown>): CodexTokens | undefined {
  if (typeof doc.tokens !== 'object' || doc.tokens === null) return undefined;
  try {
    return validateTokens(doc.tokens as Record<string, unknown>, '');
  } catch {
    return undefined;
  }
}

/**
 * Writes refreshed tokens back to auth.json, atomically and with mode 0600. The file is re-read first
 * so fields another program (Codex CLI) changed meanwhile are kept; `fallback` stands in when it
 * cannot be read. `last_refresh` is set to now. Returns the document written, or undefined (nothing
 * written) when the file now holds another account's login, which must not be overwritten.
 */
export async function writeBackTokens(
  path: string,
  fallback: Record<string, unknown>,
  tokens: CodexTokens,
  now = Date.now(),
): Promise<Record<string, unknown> | undefined> {
  const current = (await readAuthDoc(path)) ?? fallback;
  const onFile = tokensOfDoc(current);
  if (onFile !== undefined && onFile.accountId !== tokens.accountId) return undefined;
  const oldTokens =
    typeof current.tokens === 'object' && current.tokens !== null
      ? (current.tokens as Record<string, unknown>)
      : {};
  const doc: Record<string, unknown> = {
    ...current,
    tokens: {
      ...oldTokens,
      ...(tokens.idToken === undefined ? {} : { id_token: tokens.idToken }),
      access_token: tokens.accessToken,
      refresh_token: tokens.refreshToken,
      account_id: tokens.accountId,
    },
    last_refresh: new Date(now).toISOString(),
  };
  await writeFileAtomic(path, JSON.stringify(doc, null, 2));
  return doc;
}
