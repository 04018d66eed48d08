/**
 * `tapgate login codex` through the real CLI binary against a loopback OAuth issuer: the authorize
 * URL and its PKCE values, the code exchange's form, a forged callback (state mismatch) refused, a
 * refused consent, a timeout, a callback port in use, the device-code flow (pending then approved,
 * and denied), and the file written: Codex CLI's auth.json, mode 0600, readable by the codex upstream,
 * never replaced without --force, no token printed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAuthFile } from '../../plugins/codex-upstream/credentials.js';
import { writeFileAtomic } from '../../plugins/codex-upstream/atomic-write.js';
import { challengeOf, createPkce, createState } from '../../plugins/codex-upstream/login/pkce.js';
import { browserCommand } from '../../plugins/codex-upstream/login/open-browser.js';
import { killStrayClis, runCli, type Cli } from '../helpers/cli.js';
import { CODEX_CLIENT_ID, startOAuthServer, type OAuthServer } from '../helpers/codex-oauth-server.js';

/** No display, so even a forgotten --no-browser could not open one. */
const HEADLESS = { DISPLAY: '', WAYLAND_DISPLAY: '' };

/** Resolves with the first match of `re` in the process's stdout (event-driven, no polling). */
function output(cli: Cli, re: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = cli.stdout().match(re);
      if (m === null) return false;
      cli.child.stdout!.off('data', check);
      resolve(m);
      return true;
    };
    if (check()) return;
    cli.child.stdout!.on('data', check);
    void cli.closed.then(() => {
      if (!check())
        reject(
          new Error(`exited without printing ${re}\nstdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`),
        );
    });
  });
}

/** The sign-in URL the CLI printed. */
async function signInUrl(cli: Cli): Promise<URL> {
  return new URL((await output(cli, /^ {2}(http\S+\/oauth\/authorize\?\S+)$/m))[1]!);
}

/** What a browser does with the authorize URL: follow the issuer's redirect to the callback. */
async function consent(authorize: URL): Promise<{ status: number; page: string; callback: URL }> {
  const r = await fetch(authorize, { redirect: 'manual' });
  assert.equal(r.status, 302, 'the issuer redirects to the callback');
  const callback = new URL(r.headers.get('location')!);
  return { ...(await visit(callback)), callback };
}

/** A GET of a callback URL; `localhost` is dialled as 127.0.0.1, where the callback server listens. */
async function visit(url: URL): Promise<{ status: number; page: string }> {
  const target = new URL(url);
  target.hostname = '127.0.0.1';
  const r = await fetch(target);
  return { status: r.status, page: await r.text() };
}

describe('tapgate login codex', function () {
  this.timeout(30_000);
  let dir: string;
  let oauth: OAuthServer;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-login-'));
    oauth = await startOAuthServer();
  });
  afterEach(async () => {
    killStrayClis();
    await oauth.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function login(out: string, ...extra: string[]): Cli {
    return runCli(['login', 'codex', '--out', out, '--issuer', oauth.url, '--no-browser', ...extra], {
      env: HEADLESS,
    });
  }

  /** Nothing that an issued token could be found in: output, or a file other than `except`. */
  function assertNoTokenPrinted(cli: Cli): void {
    for (const l of oauth.issued)
      for (const secret of [l.access_token, l.refresh_token, l.id_token]) {
        assert.ok(!cli.stdout().includes(secret), 'stdout holds a token');
        assert.ok(!cli.stderr().includes(secret), 'stderr holds a token');
      }
  }

  describe('PKCE and state', () => {
    it('makes a 43–128 character verifier of unreserved characters, and challenge = base64url(sha256(verifier))', () => {
      const a = createPkce();
      const b = createPkce();
      assert.match(a.verifier, /^[A-Za-z0-9._~-]{43,128}$/);
      assert.equal(a.challenge, createHash('sha256').update(a.verifier).digest('base64url'));
      assert.equal(a.challenge, challengeOf(a.verifier));
      assert.doesNotMatch(a.challenge, /[=+/]/, 'unpadded base64url');
      assert.notEqual(a.verifier, b.verifier);
      assert.notEqual(createState(), createState());
    });

    it('opens a browser only where one can show', () => {
      assert.equal(browserCommand('linux', {}), undefined, 'a headless Linux server');
      assert.deepEqual(browserCommand('linux', { DISPLAY: ':0' }), ['xdg-open', []]);
      assert.deepEqual(browserCommand('darwin', {}), ['open', []]);
    });
  });

  describe('browser sign-in', () => {
    it('sends Codex CLI’s authorize request, exchanges the code with the PKCE verifier, writes auth.json 0600', async () => {
      const out = join(dir, 'accounts', 'alice.json'); // the folder does not exist yet
      const cli = login(out, '--port', '0');
      const url = await signInUrl(cli);
      const q = Object.fromEntries(url.searchParams);
      assert.equal(url.origin + url.pathname, `${oauth.url}/oauth/authorize`);
      assert.equal(q.response_type, 'code');
      assert.equal(q.client_id, CODEX_CLIENT_ID);
      assert.equal(q.scope, 'openid profile email offline_access');
      assert.equal(q.code_challenge_method, 'S256');
      assert.match(q.code_challenge!, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(q.id_token_add_organizations, 'true');
      assert.equal(q.codex_cli_simplified_flow, 'true');
      assert.equal(q.originator, 'codex_cli_rs');
      assert.ok(q.state!.length >= 32, 'an unguessable state');
      const redirect = new URL(q.redirect_uri!);
      assert.equal(redirect.hostname, 'localhost');
      assert.equal(redirect.pathname, '/auth/callback');
      assert.notEqual(redirect.port, '0');

      const browser = await consent(url);
      assert.equal(browser.status, 200);
      assert.match(browser.page, /Signed in/);
      assert.equal((await cli.closed).code, 0, cli.stderr());

      const exchange = oauth.requests.filter((r) => r.path === '/oauth/token');
      assert.equal(exchange.length, 1);
      const form = exchange[0]!.form;
      assert.deepEqual(Object.keys(form).sort(), [
        'client_id',
        'code',
        'code_verifier',
        'grant_type',
        'redirect_uri',
      ]);
      assert.equal(form.grant_type, 'authorization_code');
      assert.equal(form.client_id, CODEX_CLIENT_ID);
      assert.equal(form.code, browser.callback.searchParams.get('code'));
      assert.equal(form.redirect_uri, q.redirect_uri);
      assert.match(form.code_verifier!, /^[A-Za-z0-9._~-]{43,128}$/);
      assert.equal(createHash('sha256').update(form.code_verifier!).digest('base64url'), q.code_challenge);

      // Codex CLI's auth.json, readable by the codex upstream as-is.
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const doc = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
      const issued = oauth.issued[0]!;
      assert.deepEqual(Object.keys(doc).sort(), ['OPENAI_API_KEY', 'last_refresh', 'tokens']);
      assert.equal(doc.OPENAI_API_KEY, null);
      assert.deepEqual(doc.tokens, {
        id_token: issued.id_token,
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        account_id: 'acct-login-1',
      });
      assert.ok(Math.abs(Date.parse(doc.last_refresh as string) - Date.now()) < 60_000);
      const loaded = loadAuthFile('check', out);
      assert.equal(loaded.tokens.accountId, 'acct-login-1');
      assert.equal(loaded.tokens.refreshToken, issued.refresh_token);
      assert.deepEqual(readdirSync(join(dir, 'accounts')), ['alice.json'], 'no temp file left behind');

      assert.match(cli.stdout(), /Signed in: ChatGPT account acct-login-1 \(user@example\.com, plan plus\)/);
      assertNoTokenPrinted(cli);
    });

    it('refuses a callback whose state is not its own, and keeps waiting for the real one', async () => {
      const out = join(dir, 'bob.json');
      const cli = login(out, '--port', '0');
      const url = await signInUrl(cli);
      const forged = new URL(url.searchParams.get('redirect_uri')!);
      forged.searchParams.set('code', 'attacker-code');
      forged.searchParams.set('state', 'not-the-state');
      const refused = await visit(forged);
      assert.equal(refused.status, 400);
      assert.match(refused.page, /state mismatch/);
      await output(cli, /refused a callback whose state/);
      assert.equal(oauth.count('/oauth/token'), 0, 'a forged code is never exchanged');
      assert.equal(existsSync(out), false);

      const browser = await consent(url);
      assert.equal(browser.status, 200);
      assert.equal((await cli.closed).code, 0, cli.stderr());
      assert.equal(oauth.count('/oauth/token'), 1);
      assert.equal(loadAuthFile('check', out).tokens.accountId, 'acct-login-1');
    });

    it('a refused consent (error=access_denied) ends with a clear error and writes nothing', async () => {
      oauth.consent = 'deny';
      const out = join(dir, 'carol.json');
      const cli = login(out, '--port', '0');
      const browser = await consent(await signInUrl(cli));
      assert.match(browser.page, /Sign-in cancelled/);
      assert.equal((await cli.closed).code, 1);
      assert.match(
        cli.stderr(),
        /sign-in refused: consent was not given \(access_denied: The user declined\.\); nothing was written/,
      );
      assert.equal(oauth.count('/oauth/token'), 0);
      assert.equal(existsSync(out), false);
    });

    it('times out with a clear error, writing nothing', async () => {
      const out = join(dir, 'dave.json');
      const cli = login(out, '--port', '0', '--timeout', '300ms');
      await signInUrl(cli);
      assert.equal((await cli.closed).code, 1);
      assert.match(cli.stderr(), /no sign-in completed within 300ms \(--timeout\): nothing was written/);
      assert.equal(existsSync(out), false);
      assert.deepEqual(readdirSync(dir), []);
    });

    it('a callback port in use: a clear error naming the port, --port and --device', async () => {
      const busy = http.createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
      const { port } = busy.address() as AddressInfo;
      try {
        const cli = login(join(dir, 'erin.json'), '--port', String(port));
        assert.equal((await cli.closed).code, 1);
        assert.match(
          cli.stderr(),
          new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use.*--port N.*--device`),
        );
        assert.equal(oauth.requests.length, 0);
        assert.deepEqual(readdirSync(dir), []);
      } finally {
        await new Promise<void>((r) => busy.close(() => r()));
      }
    });

    it('never replaces an existing file without --force; with it, replaces it', async () => {
      const out = join(dir, 'frank.json');
      writeFileSync(out, '{"keep":"me"}', { mode: 0o600 });
      const refused = login(out, '--port', '0');
      assert.equal((await refused.closed).code, 1);
      assert.match(refused.stderr(), /frank\.json already exists: pass --force to replace it/);
      assert.equal(readFileSync(out, 'utf8'), '{"keep":"me"}');
      assert.equal(oauth.requests.length, 0, 'refused before any sign-in');

      const forced = login(out, '--port', '0', '--force');
      await consent(await signInUrl(forced));
      assert.equal((await forced.closed).code, 0, forced.stderr());
      assert.equal(loadAuthFile('check', out).tokens.accountId, 'acct-login-1');
      assert.equal(statSync(out).mode & 0o777, 0o600);
    });

    it('an exclusive atomic write keeps a file that appeared meanwhile', async () => {
      const out = join(dir, 'raced.json');
      writeFileSync(out, 'first');
      await assert.rejects(writeFileAtomic(out, 'second', 0o600, { exclusive: true }), { code: 'EEXIST' });
      assert.equal(readFileSync(out, 'utf8'), 'first');
      assert.deepEqual(readdirSync(dir), ['raced.json'], 'the temp file is removed');
      await writeFileAtomic(join(dir, 'new.json'), 'x', 0o600, { exclusive: true });
      assert.equal(statSync(join(dir, 'new.json')).mode & 0o777, 0o600);
    });

    it('refuses bad arguments with exit code 2', async () => {
      const noOut = runCli(['login', 'codex', '--no-browser'], { env: HEADLESS });
      assert.equal((await noOut.closed).code, 2);
      assert.match(noOut.stderr(), /--out FILE is required/);
      const plainHttp = runCli(
        ['login', 'codex', '--out', join(dir, 'x.json'), '--issuer', 'http://auth.example.com'],
        {
          env: HEADLESS,
        },
      );
      assert.equal((await plainHttp.closed).code, 2);
      assert.match(plainHttp.stderr(), /--issuer must be https/);
    });
  });

  describe('device-code sign-in', () => {
    it('polls while pending, then exchanges the approved code with the device redirect URI', async () => {
      const out = join(dir, 'grace.json');
      const cli = login(out, '--device');
      const [, verification, userCode] = await output(
        cli,
        /open (\S+) in any browser and enter this one-time code: (\S+)/,
      );
      assert.equal(verification, `${oauth.url}/codex/device`);
      assert.match(userCode!, /^ABCD-\d+$/);
      const asked = oauth.requests.find((r) => r.path === '/api/accounts/deviceauth/usercode')!;
      assert.deepEqual(asked.json, { client_id: CODEX_CLIENT_ID });
      await oauth.arrived('/api/accounts/deviceauth/token', 2); // two polls answered "pending"
      assert.equal(existsSync(out), false);
      oauth.account = 'acct-device-7';
      oauth.device = 'approve';
      assert.equal((await cli.closed).code, 0, cli.stderr());

      const poll = oauth.requests.find((r) => r.path === '/api/accounts/deviceauth/token')!;
      assert.equal(poll.json?.user_code, userCode);
      assert.equal(typeof poll.json?.device_auth_id, 'string');
      const form = oauth.requests.find((r) => r.path === '/oauth/token')!.form;
      assert.equal(form.grant_type, 'authorization_code');
      assert.equal(form.redirect_uri, `${oauth.url}/deviceauth/callback`);
      assert.equal(form.client_id, CODEX_CLIENT_ID);
      assert.ok(form.code_verifier, 'the verifier the issuer handed back');

      assert.equal(statSync(out).mode & 0o777, 0o600);
      const file = loadAuthFile('check', out);
      assert.equal(file.tokens.accountId, 'acct-device-7');
      assert.equal(file.doc.OPENAI_API_KEY, null);
      assertNoTokenPrinted(cli);
    });

    it('a denied device sign-in ends with a clear error and writes nothing', async () => {
      const out = join(dir, 'heidi.json');
      const cli = login(out, '--device');
      await oauth.arrived('/api/accounts/deviceauth/token', 1);
      oauth.device = 'deny';
      assert.equal((await cli.closed).code, 1);
      assert.match(
        cli.stderr(),
        /sign-in refused: HTTP 400 \(access_denied: The user declined\.\); nothing was written/,
      );
      assert.equal(oauth.count('/oauth/token'), 0);
      assert.equal(existsSync(out), false);
    });

    it('an id_token without a ChatGPT account id is refused, writing nothing', async () => {
      // The issuer's tokens must be usable by the codex upstream; here the claim is missing.
      const out = join(dir, 'ivan.json');
      oauth.device = 'approve';
      oauth.account = '';
      const cli = login(out, '--device');
      assert.equal((await cli.closed).code, 1);
      assert.match(cli.stderr(), /chatgpt_account_id claim/);
      assert.equal(existsSync(out), false);
    });
  });
});
