/**
 * One call to the OAuth token endpoint (`grant_type=refresh_token`), and what its answer means:
 * new tokens, a terminal failure (the login is dead: disable the account, never retry), or a
 * transient one (try again later).
 */
import { jwtExpiryMs } from './jwt.js';
import { parseJsonObject } from './json-object.js';

/** Codes that mean the refresh token can never work again. */
export const TERMINAL_REFRESH_CODES = new Set([
  'refresh_token_reused',
  'invalid_grant',
  'token_revoked',
  'token_invalidated',
  'refresh_token_expired',
  'refresh_token_invalidated',
]);

/** How long one token request may take in all. */
export const REFRESH_TIMEOUT_MS = 30_000;
/** Used when a new access token carries neither `exp` nor `expires_in`. */
const FALLBACK_LIFETIME_MS = 60 * 60_000;

export interface RefreshParams {
  tokenUrl: string;
  clientId: string;
  refreshToken: string;
  userAgent: string;
  timeoutMs?: number;
}

export interface RefreshedTokens {
  accessToken: string;
  /** Undefined when the endpoint did not rotate it. */
  refreshToken: string | undefined;
  idToken: string | undefined;
  expiresAt: number;
}

/** A failed refresh. `code` is the endpoint's error code, or a short label (`HTTP 503`, `network`). */
export class RefreshFailure extends Error {
  override name = 'RefreshFailure';
  constructor(
    readonly terminal: boolean,
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export async function requestTokenRefresh(p: RefreshParams, now = Date.now): Promise<RefreshedTokens> {
  const body = new URLSearchParams({
    grant_type: 'refresh_token',
    client_id: p.clientId,
    refresh_token: p.refreshToken,
    scope: 'openid profile email',
  }).toString();
  let res: Response;
  let text: string;
  try {
    res = await fetch(p.tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        'user-agent': p.userAgent,
      },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(p.timeoutMs ?? REFRESH_TIMEOUT_MS),
    });
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const what =
      e.name === 'TimeoutError'
        ? 'timed out'
        : `unreachable (${e.cause?.code ?? e.cause?.toString() ?? e.message})`;
    throw new RefreshFailure(
      false,
      e.name === 'TimeoutError' ? 'timeout' : 'network',
      `token endpoint ${what}`,
    );
  }
  const json = parseJsonObject(text);
  if (res.ok) {
    const access = json?.access_token;
    if (typeof access !== 'string' || access.length === 0)
      throw new RefreshFailure(
        false,
        'bad_response',
        `token endpoint answered HTTP ${res.status} without an access_token`,
        res.status,
      );
    const expiresIn = json!.expires_in;
    const expiresAt =
      jwtExpiryMs(access) ??
      (typeof expiresIn === 'number' && expiresIn > 0
        ? now() + expiresIn * 1000
        : now() + FALLBACK_LIFETIME_MS);
    return {
      accessToken: access,
      refreshToken: nonEmpty(json!.refresh_token),
      idToken: nonEmpty(json!.id_token),
      expiresAt,
    };
  }
  const { code, description } = errorOf(json);
  const terminal =
    (code !== undefined && TERMINAL_REFRESH_CODES.has(code)) || res.status === 400 || res.status === 401;
  const label = code ?? `HTTP ${res.status}`;
  // The description is the endpoint's; it never carries the token, but strip it if it ever did.
  const detail =
    description === undefined
      ? ''
      : `: ${description.split(p.refreshToken).join('[redacted]').slice(0, 200)}`;
  throw new RefreshFailure(
    terminal,
    label,
    `token endpoint answered HTTP ${res.status} (${label})${detail}`,
    res.status,
  );
}

/** OAuth's `{error, error_description}` or OpenAI's `{error:{code,message}}`. */
function errorOf(json: Record<string, unknown> | undefined): { code?: string; description?: string } {
  if (json === undefined) return {};
  const err = json.error;
  if (typeof err === 'string') return { code: err, description: nonEmpty(json.error_description) };
  if (typeof err === 'object' && err !== null) {
    const e = err as Record<string, unknown>;
    return { code: nonEmpty(e.code) ?? nonEmpty(e.type), description: nonEmpty(e.message) };
  }
  return { code: nonEmpty(json.code), description: nonEmpty(json.message) };
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
