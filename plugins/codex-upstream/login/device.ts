/**
 * The device-code sign-in, for a server without a browser (Codex CLI's `--device-auth`): ask the
 * issuer for a user code, tell the user where to enter it, poll at the issuer's interval until it is
 * approved (403/404 mean "not yet"), then exchange the authorization code with the PKCE verifier the
 * issuer handed back, and its device redirect URI.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { issuerText, LoginError } from './errors.js';
import { errorOf, exchangeCode, post, type IssuedTokens, type IssuerClient } from './oauth.js';

/** Codex CLI's default when the issuer names no interval. */
const DEFAULT_INTERVAL_S = 5;
/** A floor, so an interval of 0 cannot turn polling into a busy loop. */
const MIN_INTERVAL_MS = 100;

export interface DeviceLoginOptions {
  client: IssuerClient;
  signal: AbortSignal;
  /** Where to go and what to type: print them. */
  onCode(verificationUrl: string, userCode: string): void;
}

export async function deviceLogin(o: DeviceLoginOptions): Promise<IssuedTokens> {
  const c = o.client;
  const asked = await post(
    c,
    '/api/accounts/deviceauth/usercode',
    'json',
    JSON.stringify({ client_id: c.clientId }),
    'the device-code request',
    o.signal,
  );
  if (asked.status === 404)
    throw new LoginError(
      `the issuer does not offer device-code sign-in (HTTP 404 from ${c.issuer}/api/accounts/deviceauth/usercode); sign in with the browser flow instead`,
    );
  if (asked.status < 200 || asked.status > 299)
    throw new LoginError(`the device-code request failed: HTTP ${asked.status}${errorOf(asked.doc)}`);
  const doc = asked.doc ?? {};
  const deviceAuthId = doc.device_auth_id;
  const userCode = doc.user_code ?? doc.usercode;
  if (typeof deviceAuthId !== 'string' || typeof userCode !== 'string' || userCode === '')
    throw new LoginError('the device-code answer lacks device_auth_id or user_code');
  const intervalS = Number(doc.interval ?? DEFAULT_INTERVAL_S);
  const intervalMs = Math.max(
    MIN_INTERVAL_MS,
    Number.isFinite(intervalS) && intervalS >= 0 ? intervalS * 1000 : DEFAULT_INTERVAL_S * 1000,
  );
  o.onCode(`${c.issuer}/codex/device`, issuerText(userCode, 40));

  const poll = JSON.stringify({ device_auth_id: deviceAuthId, user_code: userCode });
  for (;;) {
    const r = await post(c, '/api/accounts/deviceauth/token', 'json', poll, 'polling for approval', o.signal);
    if (r.status >= 200 && r.status <= 299) {
      const code = r.doc?.authorization_code;
      const verifier = r.doc?.code_verifier;
      if (typeof code !== 'string' || typeof verifier !== 'string')
        throw new LoginError('the approval answer lacks authorization_code or code_verifier');
      return exchangeCode(c, code, `${c.issuer}/deviceauth/callback`, verifier);
    }
    if (r.status !== 403 && r.status !== 404) {
      const why = errorOf(r.doc);
      const denied = /access_denied|denied|declined|rejected/i.test(why);
      throw new LoginError(
        `${denied ? 'sign-in refused' : 'device sign-in failed'}: HTTP ${r.status}${why}; nothing was written`,
      );
    }
    await sleep(intervalMs, undefined, { signal: o.signal }).catch(() => {
      throw o.signal.reason as Error;
    });
  }
}
