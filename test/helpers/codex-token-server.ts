/**
 * A loopback OAuth token endpoint that behaves like auth.openai.com for `grant_type=refresh_token`:
 * each refresh token works once and is rotated; presenting a spent one answers `refresh_token_reused`.
 * Tests can script answers, or hold them until released, to make concurrency deterministic.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { accessToken, idToken, type CodexLogin } from './codex-jwt.js';
import { registerSecret } from './secret-scan.js';

export interface TokenRequest {
  form: Record<string, string>;
  headers: http.IncomingHttpHeaders;
}

export interface ScriptedAnswer {
  status: number;
  body: unknown;
}

export interface TokenServer {
  /** The token endpoint URL (`tokenUrl`). */
  url: string;
  requests: TokenRequest[];
  /** Makes a login known: its refresh token is live and its access token valid. */
  register(login: CodexLogin, accountId: string): void;
  /** A new login of `account`, registered; `expiresInSec` ≤ 0 gives an already expired access token. */
  login(account: string, expiresInSec?: number): CodexLogin;
  /** Whether the backend should accept this access token (issued or registered, not superseded). */
  accepts(access: string): boolean;
  /** Revokes an access token, as the backend would after e.g. a password change. */
  revoke(access: string): void;
  /** Answers the next requests with this instead (undefined: normal behaviour). */
  script: ((req: TokenRequest, n: number) => ScriptedAnswer | undefined) | undefined;
  /** Lifetime of the access tokens it issues, in seconds. */
  ttlSec: number;
  /** Holds every answer until the returned function is called. */
  hold(): () => void;
  /** Resolves when `n` requests have arrived in all. */
  arrived(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTokenServer(): Promise<TokenServer> {
  const live = new Map<string, string>(); // refresh token → account
  const spent = new Set<string>();
  const valid = new Set<string>();
  const requests: TokenRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let gate: Promise<void> | undefined;
  let minted = 0;

  const answer = (req: TokenRequest, n: number): ScriptedAnswer => {
    const scripted = server_.script?.(req, n);
    if (scripted !== undefined) return scripted;
    const rt = req.form.refresh_token ?? '';
    if (req.form.grant_type !== 'refresh_token')
      return { status: 400, body: { error: 'unsupported_grant_type' } };
    if (spent.has(rt))
      return {
        status: 401,
        body: {
          error: {
            message: 'Your refresh token has already been used to generate a new access token.',
            type: 'invalid_request_error',
            param: null,
            code: 'refresh_token_reused',
          },
        },
      };
    const account = live.get(rt);
    if (account === undefined)
      return { status: 400, body: { error: 'invalid_grant', error_description: 'unknown token' } };
    live.delete(rt);
    spent.add(rt);
    const access = accessToken(account, server_.ttlSec);
    const refresh = `rt-${account}-${++minted}`;
    live.set(refresh, account);
    valid.add(access);
    registerSecret(access, refresh);
    return {
      status: 200,
      body: {
        access_token: access,
        refresh_token: refresh,
        id_token: idToken(account),
        expires_in: server_.ttlSec,
      },
    };
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const recorded = { form, headers: req.headers };
      requests.push(recorded);
      const n = requests.length;
      for (const w of waiters.filter((w) => n >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      void (gate ?? Promise.resolve()).then(() => {
        const a = answer(recorded, n);
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(a.body));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;

  const server_: TokenServer = {
    url: `http://127.0.0.1:${port}/oauth/token`,
    requests,
    script: undefined,
    ttlSec: 3600,
    register(login, accountId) {
      live.set(login.refresh_token, accountId);
      valid.add(login.access_token);
    },
    login(account, expiresInSec = 3600) {
      const l = {
        access_token: accessToken(account, expiresInSec),
        refresh_token: `rt-${account}-0`,
        id_token: idToken(account),
        account_id: account,
      };
      server_.register(l, account);
      return l;
    },
    accepts: (access) => valid.has(access),
    revoke: (access) => void valid.delete(access),
    hold() {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
    arrived: (n) =>
      requests.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return server_;
}
