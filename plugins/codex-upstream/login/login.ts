/**
 * `tapgate login codex`: one sign-in (browser or device code) against the issuer, its tokens saved as
 * a Codex CLI auth.json. Bounded by a timeout; on any failure nothing is written. Tokens are never printed.
 */
import { existsSync } from 'node:fs';
import { jwtClaims, AUTH_CLAIM } from '../jwt.js';
import { browserLogin } from './browser.js';
import { deviceLogin } from './device.js';
import { LoginError } from './errors.js';
import { defaultClient, type IssuedTokens } from './oauth.js';
import { openBrowser } from './open-browser.js';
import { authDocument, saveLogin } from './save.js';

export { LoginError } from './errors.js';
export { DEFAULT_CALLBACK_PORT, DEFAULT_ISSUER } from './oauth.js';

export interface CodexLoginOptions {
  /** The auth.json to write (absolute). */
  out: string;
  device: boolean;
  issuer: string;
  port: number;
  timeoutMs: number;
  /** The timeout as the user wrote it, for the message. */
  timeoutText: string;
  force: boolean;
  /** Try to open a browser (browser flow only; the URL is printed regardless). */
  openBrowser: boolean;
  /** Instructions for the user. */
  say(line: string): void;
}

export interface LoginResult {
  accountId: string;
  email: string | undefined;
  plan: string | undefined;
}

export async function codexLogin(o: CodexLoginOptions): Promise<LoginResult> {
  if (!o.force && existsSync(o.out))
    throw new LoginError(`${o.out} already exists: pass --force to replace it, or choose another --out`);
  const client = defaultClient(o.issuer);
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new LoginError(`no sign-in completed within ${o.timeoutText} (--timeout): nothing was written`),
      ),
    o.timeoutMs,
  );
  let result: LoginResult | undefined;
  const save = async (issued: IssuedTokens) => {
    const { doc, tokens } = authDocument(issued);
    await saveLogin(o.out, doc, o.force);
    const claims = jwtClaims(issued.idToken) ?? {};
    const auth = (claims[AUTH_CLAIM] ?? {}) as Record<string, unknown>;
    result = {
      accountId: tokens.accountId,
      email: typeof claims.email === 'string' ? claims.email : undefined,
      plan: typeof auth.chatgpt_plan_type === 'string' ? auth.chatgpt_plan_type : undefined,
    };
  };
  try {
    if (o.device) {
      const issued = await deviceLogin({
        client,
        signal: timeout.signal,
        onCode: (url, code) =>
          o.say(
            `To sign in, open ${url} in any browser and enter this one-time code: ${code}\n(Never share this code.) Waiting for approval…`,
          ),
      });
      await save(issued);
    } else {
      await browserLogin({
        client,
        port: o.port,
        signal: timeout.signal,
        save,
        note: (m) => o.say(m),
        onUrl: (url) => {
          o.say(`Sign in to ChatGPT with this URL:\n\n  ${url}\n`);
          if (o.openBrowser && openBrowser(url)) o.say('(opened in your browser)');
          o.say('Waiting for the sign-in…');
        },
      });
    }
  } finally {
    clearTimeout(timer);
  }
  if (result === undefined) throw new LoginError('the sign-in ended without a login');
  return result;
}
