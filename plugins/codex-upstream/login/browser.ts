/**
 * The browser sign-in: a callback server on 127.0.0.1, the authorize URL with PKCE and `state`, then
 * the code exchange when the issuer redirects the browser back. A callback whose `state` is not ours
 * is refused and the login keeps waiting (anyone can make a browser open a localhost URL); a refused
 * consent (`error=access_denied`) or a failed exchange ends it. The browser gets a small page either way.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { issuerText, LoginError } from './errors.js';
import { authorizeUrl, CALLBACK_PATH, exchangeCode, type IssuedTokens, type IssuerClient } from './oauth.js';
import { createPkce, createState } from './pkce.js';

export interface BrowserLoginOptions {
  client: IssuerClient;
  /** The callback port on 127.0.0.1 (0: any free one). */
  port: number;
  /** Aborted on timeout (or by the caller): the login ends, nothing is written. */
  signal: AbortSignal;
  /** The authorize URL, once the callback server listens: print it, maybe open a browser. */
  onUrl(url: string): void;
  /** Keeps the tokens (writes the file); its failure is shown on the page and ends the login. */
  save(tokens: IssuedTokens): Promise<void>;
  /** A line for the user (a refused callback, say). */
  note(message: string): void;
}

export async function browserLogin(o: BrowserLoginOptions): Promise<void> {
  const pkce = createPkce();
  const state = createState();
  let busy = false;
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err === undefined ? resolve() : reject(err));
  });
  let redirectUri = '';

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH) return page(res, 404, 'Not found', '');
    const q = url.searchParams;
    if (q.get('state') !== state) {
      o.note('refused a callback whose state is not this login’s (still waiting)');
      return page(
        res,
        400,
        'Sign-in failed',
        'This answer does not belong to the sign-in tapgate started (state mismatch).',
      );
    }
    if (busy) return page(res, 409, 'Sign-in in progress', 'This sign-in is already being completed.');
    const error = q.get('error');
    if (error !== null) {
      const description = issuerText(q.get('error_description'));
      const refused = error === 'access_denied';
      page(
        res,
        200,
        refused ? 'Sign-in cancelled' : 'Sign-in failed',
        refused
          ? 'Access was not granted. You can close this tab.'
          : `The sign-in failed (${issuerText(error, 60)}).`,
      );
      return settle(
        new LoginError(
          refused
            ? `sign-in refused: consent was not given (access_denied${description ? `: ${description}` : ''}); nothing was written`
            : `sign-in failed: the issuer answered ${issuerText(error, 60)}${description ? `: ${description}` : ''}; nothing was written`,
        ),
      );
    }
    const code = q.get('code');
    if (code === null || code === '')
      return page(res, 400, 'Sign-in failed', 'The answer holds no authorization code.');
    busy = true;
    exchangeCode(o.client, code, redirectUri, pkce.verifier)
      .then((tokens) => o.save(tokens))
      .then(
        () => {
          page(res, 200, 'Signed in', 'tapgate has the login of this account. You can close this tab.');
          settle();
        },
        (err: unknown) => {
          const message =
            err instanceof LoginError ? err.message : `saving the login failed: ${(err as Error).message}`;
          page(res, 500, 'Sign-in failed', message);
          settle(err instanceof LoginError ? err : new LoginError(message));
        },
      );
  });

  await listen(server, o.port);
  try {
    const { port } = server.address() as AddressInfo;
    redirectUri = `http://localhost:${port}${CALLBACK_PATH}`;
    // Once the code is being exchanged, let it finish: a timeout must not report failure for a file
    // that is then written (the exchange has its own request timeout).
    const onAbort = () => {
      if (!busy) settle(o.signal.reason as Error);
    };
    if (o.signal.aborted) onAbort();
    o.signal.addEventListener('abort', onAbort, { once: true });
    o.onUrl(authorizeUrl(o.client, redirectUri, pkce.challenge, state));
    await done;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE')
        reject(
          new LoginError(
            `port ${port} on 127.0.0.1 is in use (another login running?): free it, pass --port N (the issuer must accept http://localhost:N${CALLBACK_PATH}), or sign in with --device`,
          ),
        );
      else
        reject(
          new LoginError(`cannot listen on 127.0.0.1:${port} for the callback (${err.code ?? err.message})`),
        );
    });
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

function page(res: http.ServerResponse, status: number, title: string, text: string): void {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = `<!doctype html><meta charset="utf-8"><title>tapgate: ${esc(title)}</title><body style="font-family:system-ui;margin:3em"><h1>${esc(title)}</h1><p>${esc(text)}</p></body>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(body);
}
