/**
 * Who may see the dashboard: the admin token, presented as `Authorization: Bearer <token>` by
 * programs, or exchanged once through a login form for an HttpOnly, SameSite=Strict session cookie
 * by browsers. The token never travels in a URL. Comparisons are constant time; sessions live in
 * memory (hashed), for 12 hours at most.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { FailureThrottle, Reply, RequestContext } from '../../core/index.js';

export const COOKIE_NAME = 'tapgate_dash';
export const SESSION_TTL_MS = 12 * 3600_000;
/** Live sessions kept at most; the oldest goes first. */
const MAX_SESSIONS = 1000;
/** Largest login form accepted. */
const MAX_FORM_BYTES = 4096;
const SESSION_ID = /^[0-9a-f]{64}$/;

/** How a request proved it may watch: the bearer token, or a session (by its key). */
export type Identity = { kind: 'bearer' } | { kind: 'session'; key: string };

/** Why a request may not watch. */
export interface Denied {
  kind: 'denied';
  /** Seconds to wait: its address failed too often (0: it may try again). */
  retryAfter: number;
  /** Its access line is written: no wrong token, or the first of its address's window. */
  logged: boolean;
}

const BEARER: Identity = { kind: 'bearer' };
const NO_CREDENTIALS: Denied = { kind: 'denied', retryAfter: 0, logged: true };

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export class DashboardAuth {
  private digest: Buffer;
  /** sha256(session id) in hex → expiry (epoch ms). */
  private readonly sessions = new Map<string, number>();
  /** Told when a session ends (logout), so its viewers can be closed. */
  onSessionEnd: ((key: string) => void) | undefined;

  constructor(
    token: string,
    /** The dashboard's path, e.g. `/dashboard`: the cookie's Path. */
    readonly path: string,
    /** Wrong tokens per source address (login form and bearer): its own, apart from the client keys'. */
    private readonly throttle: FailureThrottle,
  ) {
    this.digest = sha256(token);
  }

  /**
   * A new admin token (a config reload): the old one stops working at once, and every session made
   * with it ends, so rotating the token is how an operator revokes access.
   */
  rotate(token: string): void {
    this.digest = sha256(token);
    for (const key of [...this.sessions.keys()]) {
      this.sessions.delete(key);
      this.onSessionEnd?.(key);
    }
  }

  /** Whether `presented` is the admin token (constant time in its content). */
  checkToken(presented: string): boolean {
    return timingSafeEqual(sha256(presented), this.digest);
  }

  /**
   * The request's identity, or why it has none. A bearer token is checked only while its address is
   * under the failure limit, and a wrong one counts; a session cookie (unguessable) is not throttled.
   */
  identify(req: IncomingMessage, now = Date.now()): Identity | Denied {
    const headers = req.headers;
    const auth = headers.authorization;
    if (auth !== undefined && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') {
      const address = req.socket.remoteAddress ?? '';
      const wait = this.throttle.refusal(address, now);
      if (wait > 0) return { kind: 'denied', retryAfter: wait, logged: false };
      if (this.checkToken(auth.slice(7).trim())) return BEARER;
      return { kind: 'denied', retryAfter: 0, logged: this.throttle.fail(address, now) };
    }
    const key = this.sessionKey(headers);
    return key !== undefined && this.alive(key, now) ? { kind: 'session', key } : NO_CREDENTIALS;
  }

  /** Whether a session is still live. */
  alive(key: string, now = Date.now()): boolean {
    const expires = this.sessions.get(key);
    if (expires === undefined) return false;
    if (expires > now) return true;
    this.sessions.delete(key);
    return false;
  }

  /**
   * POST {path}/login with a form field `token`: a session cookie and 303 to the page, or the form
   * with 401 (429 while the address is over the failure limit), closing the connection.
   */
  async login(ctx: RequestContext): Promise<Exclude<Reply, symbol>> {
    const req = ctx.req;
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded')
      return this.form(415, 'Send the form as application/x-www-form-urlencoded.');
    const address = req.socket.remoteAddress ?? '';
    // Before the form is read: while over the limit, even the right token is refused.
    const wait = this.throttle.refusal(address);
    if (wait > 0) {
      ctx.skipAccessLog = true;
      const reply = this.form(429, `Too many failed logins from this address: try again in ${wait}s.`);
      return { ...reply, headers: { ...closeHeaders(), 'retry-after': String(wait) } };
    }
    const body = await readLimited(req, MAX_FORM_BYTES);
    if (body === undefined) return { ...this.form(413, 'The form is too large.'), headers: closeHeaders() };
    const token = new URLSearchParams(body).get('token') ?? '';
    if (token === '' || !this.checkToken(token)) {
      if (!this.throttle.fail(address)) ctx.skipAccessLog = true;
      return { ...this.form(401, 'Wrong token.'), headers: closeHeaders() };
    }
    const id = randomBytes(32).toString('hex');
    this.store(sha256(id).toString('hex'), Date.now() + SESSION_TTL_MS);
    return {
      status: 303,
      headers: {
        location: this.path,
        'set-cookie': this.cookie(id, SESSION_TTL_MS / 1000, secureRequest(req)),
        'cache-control': 'no-store',
      },
    };
  }

  /** POST {path}/logout: ends the session (if any), clears the cookie, 303 to the page. */
  logout(req: IncomingMessage): Exclude<Reply, symbol> {
    const key = this.sessionKey(req.headers);
    if (key !== undefined && this.sessions.delete(key)) this.onSessionEnd?.(key);
    return {
      status: 303,
      headers: {
        location: this.path,
        'set-cookie': this.cookie('', 0, secureRequest(req)),
        'cache-control': 'no-store',
      },
    };
  }

  /** The login form (`GET {path}/login`, and any unauthenticated page request) with its status. */
  form(status: number, message?: string): Exclude<Reply, symbol> {
    return { status, headers: htmlHeaders(), body: loginPage(this.path, message) };
  }

  private sessionKey(headers: IncomingHttpHeaders): string | undefined {
    const id = readCookie(headers.cookie, COOKIE_NAME);
    return id !== undefined && SESSION_ID.test(id) ? sha256(id).toString('hex') : undefined;
  }

  private store(key: string, expires: number): void {
    if (this.sessions.size >= MAX_SESSIONS) {
      const now = Date.now();
      for (const [k, e] of this.sessions) if (e <= now) this.sessions.delete(k);
      // Still full: the oldest session goes (Map keeps insertion order).
      while (this.sessions.size >= MAX_SESSIONS) {
        const oldest = this.sessions.keys().next().value!;
        this.sessions.delete(oldest);
        this.onSessionEnd?.(oldest);
      }
    }
    this.sessions.set(key, expires);
  }

  private cookie(value: string, maxAge: number, secure: boolean): string {
    return (
      `${COOKIE_NAME}=${value}; HttpOnly; SameSite=Strict; Path=${this.path}; Max-Age=${maxAge}` +
      (secure ? '; Secure' : '')
    );
  }
}

/** Behind a TLS-terminating proxy the cookie is marked Secure too. */
function secureRequest(req: IncomingMessage): boolean {
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0]!.trim().toLowerCase() === 'https';
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The body as text, or undefined when it is larger than `limit` bytes. */
export function readLimited(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        cleanup();
        req.resume(); // discard the rest; the connection closes after the answer
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function closeHeaders(): OutgoingHttpHeaders {
  return { ...htmlHeaders(), connection: 'close' };
}

const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/**
 * Headers of every HTML answer: no caching, no framing, no sniffing, no inline script. The feed's
 * own ws:// and wss:// origins are named as well as 'self', for browsers whose 'self' omits them.
 */
export function htmlHeaders(host?: string): OutgoingHttpHeaders {
  const feed = host !== undefined && HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'same-origin',
    'content-security-policy':
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
      `connect-src 'self'${feed}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'`,
  };
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function loginPage(path: string, message: string | undefined): string {
  const action = escapeHtml(`${path}/login`);
  const alert =
    message === undefined ? '' : `\n      <p class="error" role="alert">${escapeHtml(message)}</p>`;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="color-scheme" content="light dark" />
    <title>tapgate dashboard: log in</title>
    <link rel="icon" href="data:," />
    <style>
      body { font: 15px/1.5 system-ui, sans-serif; display: grid; place-items: center; min-height: 90vh; margin: 0; }
      main { width: min(22rem, 90vw); }
      h1 { font-size: 1.2rem; margin: 0 0 1rem; }
      label { display: block; margin-bottom: 0.3rem; }
      input { width: 100%; box-sizing: border-box; padding: 0.5rem; font: inherit; }
      button { margin-top: 0.8rem; padding: 0.45rem 1.2rem; font: inherit; cursor: pointer; }
      .error { color: #c0392b; }
    </style>
  </head>
  <body>
    <main>
      <h1>tapgate dashboard</h1>
      <form method="post" action="${action}">
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        <button type="submit">Log in</button>
      </form>${alert}
    </main>
  </body>
</html>
`;
}

/**
 * Whether the request comes from the gateway's own pages: no `Origin` (a program), or one equal to
 * the origin the client addressed (`http://` or, behind a TLS proxy, `https://` plus the Host header).
 * `allowOpaque` also accepts `Origin: null`, which browsers send for form posts under some referrer
 * policies (the forms are guarded by SameSite=Strict and the token itself).
 */
export function sameOrigin(headers: IncomingHttpHeaders, allowOpaque = false): boolean {
  const origin = headers.origin?.toLowerCase();
  if (origin === undefined) return true;
  if (allowOpaque && origin === 'null') return true;
  const host = headers.host?.toLowerCase();
  if (host === undefined || host === '') return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}
