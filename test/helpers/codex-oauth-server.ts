/**
 * A loopback OAuth issuer that behaves like auth.openai.com for Codex CLI's sign-in:
 * - `GET /oauth/authorize` checks the request and simulates the consent screen: it redirects (302) to
 *   the `redirect_uri` with a one-time code, or with `error=access_denied` when `consent` is 'deny';
 * - `POST /oauth/token` (`grant_type=authorization_code`) accepts a code once, for its client and
 *   redirect URI, and only with the verifier whose sha256 is the code's challenge (PKCE S256);
 * - `POST /api/accounts/deviceauth/usercode` and `/token`: the device-code flow, pending (403) until
 *   the test approves or denies it; approval hands back a code and its server-minted PKCE pair.
 * Every request is recorded; issued tokens are registered with the secret scan.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { accessToken, idToken } from './codex-jwt.js';
import { registerSecret } from './secret-scan.js';

export const CODEX_CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';

export interface IssuerRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  form: Record<string, string>;
  json: Record<string, unknown> | undefined;
}

interface IssuedCode {
  challenge: string;
  redirectUri: string;
  account: string;
}

export interface IssuedLogin {
  account: string;
  access_token: string;
  refresh_token: string;
  id_token: string;
}

export interface OAuthServer {
  /** The issuer URL (`--issuer`). */
  url: string;
  requests: IssuerRequest[];
  /** What the consent screen does with the next authorize request. */
  consent: 'approve' | 'deny';
  /** The account the next login signs in. */
  account: string;
  /** Device flow: pending until the test decides. */
  device: 'pending' | 'approve' | 'deny';
  /** Tokens issued by the token endpoint, in order. */
  issued: IssuedLogin[];
  /** Resolves once `n` requests to `path` have arrived. */
  arrived(path: string, n: number): Promise<void>;
  count(path: string): number;
  close(): Promise<void>;
}

const b64sha = (s: string) => createHash('sha256').update(s).digest('base64url');

export async function startOAuthServer(): Promise<OAuthServer> {
  const codes = new Map<string, IssuedCode>();
  const devices = new Map<string, string>(); // device_auth_id → user_code
  const waiters: { path: string; n: number; resolve: () => void }[] = [];
  let serial = 0;
  let base = '';

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const newCode = (c: IssuedCode) => {
    const code = `code-${++serial}-${randomBytes(6).toString('hex')}`;
    codes.set(code, c);
    return code;
  };

  const handle = (rec: IssuerRequest, res: http.ServerResponse) => {
    if (rec.method === 'GET' && rec.path === '/oauth/authorize') {
      const q = rec.query;
      const bad =
        q.response_type !== 'code' ||
        q.client_id !== CODEX_CLIENT_ID ||
        q.code_challenge_method !== 'S256' ||
        !/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge ?? '') ||
        !q.state ||
        !q.redirect_uri;
      if (bad) return json(res, 400, { error: 'invalid_request' });
      const to = new URL(q.redirect_uri!);
      to.searchParams.set('state', q.state!);
      if (server_.consent === 'deny') {
        to.searchParams.set('error', 'access_denied');
        to.searchParams.set('error_description', 'The user declined.');
      } else {
        const account = server_.account;
        to.searchParams.set(
          'code',
          newCode({ challenge: q.code_challenge!, redirectUri: q.redirect_uri!, account }),
        );
      }
      res.writeHead(302, { location: to.toString() });
      return res.end();
    }
    if (rec.method === 'POST' && rec.path === '/oauth/token') {
      const f = rec.form;
      if (f.grant_type !== 'authorization_code') return json(res, 400, { error: 'unsupported_grant_type' });
      const issued = codes.get(f.code ?? '');
      if (issued === undefined)
        return json(res, 400, { error: 'invalid_grant', error_description: 'unknown or used code' });
      codes.delete(f.code!);
      if (f.client_id !== CODEX_CLIENT_ID) return json(res, 400, { error: 'invalid_client' });
      if (f.redirect_uri !== issued.redirectUri)
        return json(res, 400, { error: 'invalid_grant', error_description: 'redirect_uri mismatch' });
      if (b64sha(f.code_verifier ?? '') !== issued.challenge)
        return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
      const login: IssuedLogin = {
        account: issued.account,
        access_token: accessToken(issued.account),
        refresh_token: `rt-login-${issued.account}-${++serial}`,
        id_token: idToken(issued.account),
      };
      registerSecret(login.access_token, login.refresh_token);
      server_.issued.push(login);
      const { account: _a, ...body } = login;
      return json(res, 200, { ...body, token_type: 'Bearer', expires_in: 3600 });
    }
    if (rec.method === 'POST' && rec.path === '/api/accounts/deviceauth/usercode') {
      if (rec.json?.client_id !== CODEX_CLIENT_ID) return json(res, 400, { error: 'invalid_client' });
      const id = `dev-${++serial}`;
      const userCode = `ABCD-${1000 + serial}`;
      devices.set(id, userCode);
      return json(res, 200, { device_auth_id: id, user_code: userCode, interval: '0' });
    }
    if (rec.method === 'POST' && rec.path === '/api/accounts/deviceauth/token') {
      const id = String(rec.json?.device_auth_id ?? '');
      if (devices.get(id) !== rec.json?.user_code) return json(res, 400, { error: 'invalid_request' });
      if (server_.device === 'pending')
        return json(res, 403, {
          error: { message: 'Device authorization is pending', code: 'deviceauth_authorization_pending' },
        });
      if (server_.device === 'deny')
        return json(res, 400, { error: 'access_denied', error_description: 'The user declined.' });
      devices.delete(id);
      const verifier = randomBytes(64).toString('base64url');
      const challenge = b64sha(verifier);
      const code = newCode({
        challenge,
        redirectUri: `${base}/deviceauth/callback`,
        account: server_.account,
      });
      return json(res, 200, { authorization_code: code, code_challenge: challenge, code_verifier: verifier });
    }
    json(res, 404, { error: 'not_found' });
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const text = Buffer.concat(chunks).toString('utf8');
      let parsed: Record<string, unknown> | undefined;
      if ((req.headers['content-type'] ?? '').startsWith('application/json'))
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          parsed = undefined;
        }
      const rec: IssuerRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        form: (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
          ? Object.fromEntries(new URLSearchParams(text))
          : {},
        json: parsed,
      };
      server_.requests.push(rec);
      handle(rec, res);
      for (const w of waiters.filter((w) => server_.count(w.path) >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const server_: OAuthServer = {
    url: base,
    requests: [],
    consent: 'approve',
    account: 'acct-login-1',
    device: 'pending',
    issued: [],
    count: (path) => server_.requests.filter((r) => r.path === path).length,
    arrived: (path, n) =>
      server_.count(path) >= n
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ path, n, resolve })),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return server_;
}
