/**
 * auth.openai.com as Codex CLI uses it to sign in (codex-rs/login: server.rs, device_code_auth.rs):
 * the authorize URL, the device-code endpoints, and the code exchange at `/oauth/token`.
 */
import { DEFAULT_CLIENT_ID, DEFAULT_ORIGINATOR, DEFAULT_VERSION } from '../schema.js';
import { parseJsonObject } from '../json-object.js';
import { issuerText, LoginError } from './errors.js';

export const DEFAULT_ISSUER = 'https://auth.openai.com';
/** The port of the redirect URI registered for Codex CLI's client: http://localhost:1455/auth/callback. */
export const DEFAULT_CALLBACK_PORT = 1455;
export const CALLBACK_PATH = '/auth/callback';
export const SCOPE = 'openid profile email offline_access';
const REQUEST_TIMEOUT_MS = 30_000;

export interface IssuerClient {
  /** `https://auth.openai.com`, no trailing slash. */
  issuer: string;
  clientId: string;
  originator: string;
  userAgent: string;
}

export function defaultClient(issuer = DEFAULT_ISSUER): IssuerClient {
  return {
    issuer: issuer.replace(/\/+$/, ''),
    clientId: DEFAULT_CLIENT_ID,
    originator: DEFAULT_ORIGINATOR,
    userAgent: `${DEFAULT_ORIGINATOR}/${DEFAULT_VERSION} (tapgate)`,
  };
}

export function authorizeUrl(c: IssuerClient, redirectUri: string, challenge: string, state: string): string {
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: c.clientId,
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    id_token_add_organizations: 'true',
    codex_cli_simplified_flow: 'true',
    state,
    originator: c.originator,
  });
  return `${c.issuer}/oauth/authorize?${query.toString()}`;
}

export interface IssuedTokens {
  idToken: string;
  accessToken: string;
  refreshToken: string;
}

/** `grant_type=authorization_code` with the PKCE verifier: the three tokens, or a LoginError. */
export async function exchangeCode(
  c: IssuerClient,
  code: string,
  redirectUri: string,
  verifier: string,
): Promise<IssuedTokens> {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    client_id: c.clientId,
    code_verifier: verifier,
  });
  const { status, doc } = await post(c, '/oauth/token', 'form', body.toString(), 'the token exchange');
  if (status < 200 || status > 299)
    throw new LoginError(`the token exchange failed: HTTP ${status}${errorOf(doc)}`);
  const str = (k: string) => (typeof doc?.[k] === 'string' && doc[k] !== '' ? doc[k] : undefined);
  const idToken = str('id_token');
  const accessToken = str('access_token');
  const refreshToken = str('refresh_token');
  const missing = [
    ['id_token', idToken],
    ['access_token', accessToken],
    ['refresh_token', refreshToken],
  ]
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length > 0) throw new LoginError(`the token exchange answered without ${missing.join(', ')}`);
  return { idToken: idToken!, accessToken: accessToken!, refreshToken: refreshToken! };
}

/** One POST to the issuer: status and JSON body (undefined when not a JSON object). */
export async function post(
  c: IssuerClient,
  path: string,
  kind: 'form' | 'json',
  body: string,
  what: string,
  signal?: AbortSignal,
): Promise<{ status: number; doc: Record<string, unknown> | undefined }> {
  try {
    const res = await fetch(c.issuer + path, {
      method: 'POST',
      headers: {
        'content-type': kind === 'form' ? 'application/x-www-form-urlencoded' : 'application/json',
        accept: 'application/json',
        'user-agent': c.userAgent,
        originator: c.originator,
      },
      body,
      redirect: 'error',
      signal:
        signal === undefined
          ? AbortSignal.timeout(REQUEST_TIMEOUT_MS)
          : AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    return { status: res.status, doc: parseJsonObject(await res.text()) };
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? 'timed out' : `unreachable (${e.cause?.code ?? e.message})`;
    throw new LoginError(`${what} failed: ${c.issuer} ${why}`);
  }
}

/** ` (code: description)` from an OAuth or OpenAI error body; empty when there is none. */
export function errorOf(doc: Record<string, unknown> | undefined): string {
  if (doc === undefined) return '';
  const e = doc.error;
  if (typeof e === 'string') {
    const d = issuerText(doc.error_description);
    return ` (${issuerText(e, 60)}${d ? `: ${d}` : ''})`;
  }
  if (typeof e === 'object' && e !== null) {
    const o = e as Record<string, unknown>;
    const code = issuerText(o.code ?? o.type, 60);
    const m = issuerText(o.message);
    return code || m ? ` (${[code, m].filter(Boolean).join(': ')})` : '';
  }
  return '';
}
