/**
 * codex-upstream credentials: boot errors that name the file or key and never print a token, the
 * identity settings, `~` expansion, write-back rules, and an auth.json that survives SIGKILL at any
 * moment of a write.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAuthFile, writeBackTokens } from '../../plugins/codex-upstream/credentials.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { postJson } from '../helpers/raw.js';
import { accessToken, idToken, makeJwt, writeAuthFile } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';

const SECRET = 'SECRET-TOKEN-TEXT-0123456789';

describe('plugin codex-upstream: credentials', () => {
  let dir: string;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let n = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-codex-cred-'));
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  after(async () => {
    await backend.close();
    await tokens.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function file(content: string): string {
    const path = join(dir, `auth-${++n}.json`);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  }

  function upstream(extra: Record<string, unknown>): Record<string, unknown> {
    return { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, ...extra };
  }

  async function bootError(extra: Record<string, unknown>): Promise<Error> {
    return startGateway(codexGatewayConfig([upstream(extra)])).then(
      async (g) => {
        await g.close();
        return assert.fail('the gateway booted');
      },
      (err: unknown) => err as Error,
    );
  }

  describe('boot errors name the file or key and never print a token', () => {
    const cases: [string, () => Record<string, unknown>, RegExp][] = [
      [
        'a missing file',
        () => ({ auth: join(dir, 'nope', 'auth.json') }),
        /cannot be read \(ENOENT\): log in with `codex login`/,
      ],
      [
        'bad JSON that holds a token',
        () => ({ auth: file(`{"tokens": {"access_token": "${SECRET}", "refresh_token": `) }),
        /is not valid JSON/,
      ],
      [
        'no tokens object',
        () => ({ auth: file('{"OPENAI_API_KEY": null, "tokens": null}') }),
        /has no "tokens" object/,
      ],
      [
        'an API-key login',
        () => ({ auth: file(`{"OPENAI_API_KEY": "sk-proj-${SECRET}"}`) }),
        /holds an API-key login \(OPENAI_API_KEY\).*type openai/,
      ],
      [
        'a corrupt access token',
        () => ({
          auth: file(
            JSON.stringify({
              tokens: { access_token: `not-a-jwt-${SECRET}`, refresh_token: SECRET, account_id: 'a' },
            }),
          ),
        }),
        /tokens\.access_token is not a JWT with an exp claim/,
      ],
      [
        'an access token without exp',
        () => ({
          auth: file(
            JSON.stringify({
              tokens: { access_token: makeJwt({ sub: SECRET }), refresh_token: SECRET, account_id: 'a' },
            }),
          ),
        }),
        /tokens\.access_token is not a JWT with an exp claim/,
      ],
      [
        'no refresh token',
        () => ({
          auth: file(JSON.stringify({ tokens: { access_token: accessToken('a'), account_id: 'a' } })),
        }),
        /tokens\.refresh_token is missing or empty/,
      ],
      [
        'no account id anywhere',
        () => ({
          auth: file(
            JSON.stringify({
              tokens: {
                access_token: makeJwt({ exp: 4e9 }),
                refresh_token: SECRET,
                id_token: makeJwt({ email: 'x' }),
              },
            }),
          ),
        }),
        /tokens\.account_id is missing and the id_token has no https:\/\/api\.openai\.com\/auth chatgpt_account_id claim/,
      ],
    ];
    it('a directory is a folder of accounts (auth-folder.ts): an empty one is a config error at auth', async () => {
      const empty = join(dir, 'empty-folder');
      mkdirSync(empty);
      const err = await bootError({ auth: empty });
      assert.equal(err.name, 'ConfigError');
      assert.match(err.message, /upstreams\[0\]\.auth: auth ".*empty-folder" matches no auth file/);
    });

    for (const [what, config, message] of cases) {
      it(what, async () => {
        const extra = config();
        const err = await bootError(extra);
        assert.equal(err.name, 'CodexCredentialsError');
        assert.match(err.message, message);
        assert.ok(err.message.includes(`codex upstream "cx": auth file ${String(extra.auth)}`), err.message);
        assert.ok(!err.message.includes(SECRET), 'a token leaked into the message');
      });
    }

    it('a corrupt inline token names the key', async () => {
      const err = await bootError({
        tokens: { access_token: `x.${SECRET}.y`, refresh_token: SECRET, account_id: 'a' },
      });
      assert.match(err.message, /^codex upstream "cx": tokens\.access_token is not a JWT/);
      assert.ok(!err.message.includes(SECRET));
    });

    it('auth and tokens together, or neither', async () => {
      const both = await bootError({
        auth: '/x',
        tokens: { access_token: accessToken('a'), refresh_token: 'r' },
      });
      assert.match(both.message, /set exactly one of auth .* and tokens/);
      const neither = await bootError({});
      assert.match(neither.message, /set exactly one of auth .* and tokens/);
    });

    it('a userAgent that disagrees with originator/version', async () => {
      const err = await bootError({
        tokens: { access_token: accessToken('a'), refresh_token: 'r', account_id: 'a' },
        userAgent: 'codex-tui/0.169.0 (x)',
      });
      assert.match(err.message, /userAgent must start with "codex_cli_rs\/0\.169\.0"/);
    });

    it('unknown keys and bad values are config errors, located', async () => {
      const err = await bootError({ auth: '/x', baseURL: 'http://x', refreshAhead: 'soon' });
      assert.equal(err.name, 'ConfigError');
      assert.match(err.message, /upstreams\[0\]\.baseURL: unknown key/);
      assert.match(err.message, /upstreams\[0\]\.refreshAhead: expected a duration/);
    });
  });

  describe('reading', () => {
    let g: TestGateway | undefined;
    afterEach(async () => {
      await g?.close();
      g = undefined;
    });

    it('reads Codex CLI auth.json as-is, taking the account id from the id_token when the file has none', async () => {
      const access = accessToken('acct-from-id');
      tokens.register({ access_token: access, refresh_token: 'rt-x' }, 'acct-from-id');
      const template = readFileSync(new URL('../fixtures/codex/auth.json', import.meta.url), 'utf8');
      const path = file(
        template.replace('<ACCESS_TOKEN>', access).replace('<ID_TOKEN>', idToken('acct-from-id')),
      );
      g = await startGateway(codexGatewayConfig([upstream({ auth: path })]));
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x', stream: true });
      assert.equal(res.status, 200);
      assert.equal(backend.requests.at(-1)!.headers['chatgpt-account-id'], 'acct-from-id');
      assert.equal(tokens.requests.length, 0);
    });

    it('expands ~ to the home directory', async () => {
      const home = mkdtempSync(join(dir, 'home-'));
      mkdirSync(join(home, '.codex'));
      const access = accessToken('acct-home');
      tokens.register({ access_token: access, refresh_token: 'rt-home' }, 'acct-home');
      writeAuthFile(join(home, '.codex'), {
        access_token: access,
        refresh_token: 'rt-home',
        account_id: 'acct-home',
      });
      const saved = process.env.HOME;
      process.env.HOME = home;
      try {
        g = await startGateway(codexGatewayConfig([upstream({ auth: '~/.codex/auth.json' })]));
      } finally {
        process.env.HOME = saved;
      }
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x', stream: true });
      assert.equal(res.status, 200);
      assert.equal(backend.requests.at(-1)!.headers['chatgpt-account-id'], 'acct-home');
    });

    it("resolves a relative auth path against the config file's directory, not the working directory", async () => {
      const confDir = mkdtempSync(join(dir, 'conf-'));
      mkdirSync(join(confDir, 'secrets'));
      const login = {
        access_token: accessToken('acct-rel', 60), // due: the refresh writes back to the resolved file
        refresh_token: 'rt-rel',
        account_id: 'acct-rel',
      };
      tokens.register(login, 'acct-rel');
      const path = writeAuthFile(join(confDir, 'secrets'), login);
      assert.notEqual(process.cwd(), confDir);
      const before = tokens.requests.length;
      g = await startGateway(
        codexGatewayConfig([upstream({ auth: 'secrets/auth.json' })]),
        {},
        join(confDir, 'config.yaml'),
      );
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x', stream: true });
      assert.equal(res.status, 200);
      assert.equal(backend.requests.at(-1)!.headers['chatgpt-account-id'], 'acct-rel');
      assert.equal(tokens.requests.length, before + 1);
      const doc = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, unknown> };
      assert.notEqual(doc.tokens.refresh_token, 'rt-rel', 'written back to the resolved file');
      await g.close();
      g = undefined;

      // A missing file is named by its resolved path.
      const err = await startGateway(
        codexGatewayConfig([upstream({ auth: 'missing/auth.json' })]),
        {},
        join(confDir, 'config.yaml'),
      ).then(
        async (gw) => {
          await gw.close();
          return assert.fail('the gateway booted');
        },
        (e: unknown) => e as Error,
      );
      assert.equal(err.name, 'CodexCredentialsError');
      assert.ok(
        err.message.includes(`auth file ${join(confDir, 'missing', 'auth.json')} cannot be read (ENOENT)`),
        err.message,
      );
    });

    it('originator and version are one source: the User-Agent is derived from them, or must agree', async () => {
      const access = accessToken('acct-ua');
      tokens.register({ access_token: access, refresh_token: 'rt-ua' }, 'acct-ua');
      const t = { access_token: access, refresh_token: 'rt-ua', account_id: 'acct-ua' };
      g = await startGateway(
        codexGatewayConfig([
          upstream({
            name: 'derived',
            tokens: t,
            originator: 'codex_exec',
            version: '0.170.1',
            models: ['m1'],
          }),
          upstream({
            name: 'custom',
            tokens: t,
            userAgent: 'codex_cli_rs/0.169.0 (Debian 12; x86_64) tapgate',
            models: ['m2'],
          }),
        ]),
      );
      await postJson(
        g.url,
        '/v1/responses',
        { model: 'm1', input: 'x', stream: true },
        { originator: 'codex_vscode', version: '0.1.0' },
      );
      const a = backend.requests.at(-1)!.headers;
      assert.deepEqual(
        [a.originator, a.version, a['user-agent']],
        ['codex_exec', '0.170.1', 'codex_exec/0.170.1 (tapgate)'],
      );
      await postJson(g.url, '/v1/responses', { model: 'm2', input: 'x', stream: true });
      const b = backend.requests.at(-1)!.headers;
      assert.deepEqual(
        [b.originator, b.version, b['user-agent']],
        ['codex_cli_rs', '0.169.0', 'codex_cli_rs/0.169.0 (Debian 12; x86_64) tapgate'],
      );
    });
  });

  describe('write-back', () => {
    it('makes the file 0600, whatever its mode was, and keeps unknown fields', async () => {
      const path = writeAuthFile(
        dir,
        { access_token: accessToken('w'), refresh_token: 'r', account_id: 'w' },
        { extra: [1, 2] },
        'wb.json',
      );
      chmodSync(path, 0o644);
      const { tokens: t, doc } = loadAuthFile('cx', path);
      const written = await writeBackTokens(path, doc, {
        ...t,
        accessToken: accessToken('w'),
        refreshToken: 'r2',
      });
      assert.ok(written);
      const onDisk = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;
      assert.equal(onDisk.tokens!.refresh_token, 'r2');
      assert.deepEqual(onDisk.extra, [1, 2]);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes('.tmp')),
        [],
        'no temp file is left behind',
      );
    });

    it('never overwrites a file that now holds another account', async () => {
      const path = writeAuthFile(
        dir,
        { access_token: accessToken('mine'), refresh_token: 'r', account_id: 'mine' },
        {},
        'other.json',
      );
      const { tokens: t, doc } = loadAuthFile('cx', path);
      writeAuthFile(
        dir,
        { access_token: accessToken('theirs'), refresh_token: 'r9', account_id: 'theirs' },
        {},
        'other.json',
      );
      const before = readFileSync(path, 'utf8');
      assert.equal(await writeBackTokens(path, doc, { ...t, refreshToken: 'r2' }), undefined);
      assert.equal(readFileSync(path, 'utf8'), before);
    });

    it('survives SIGKILL at random moments during writes: always the old or the new content, mode 0600', async function () {
      this.timeout(60_000);
      const KILLS = 24;
      const PARALLEL = 4;
      const crash = mkdtempSync(join(dir, 'crash-'));
      const big = (tag: string) =>
        JSON.stringify({
          OPENAI_API_KEY: null,
          tokens: { access_token: tag, refresh_token: tag },
          pad: tag.repeat(1_500_000),
        });
      const A = big('a');
      const B = big('b');
      const aPath = join(crash, 'A');
      const bPath = join(crash, 'B');
      writeFileSync(aPath, A);
      writeFileSync(bPath, B);
      const script = new URL('../helpers/codex-writer.ts', import.meta.url).pathname;
      let midWrite = 0;

      const once = async (i: number): Promise<void> => {
        const sub = mkdtempSync(join(crash, `run-${i}-`));
        const target = join(sub, 'auth.json');
        writeFileSync(target, A, { mode: 0o600 });
        const child = spawn(process.execPath, ['--import', 'tsx', script, target, aPath, bPath], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const exited = new Promise<NodeJS.Signals | null>((r) =>
          child.once('exit', (_code, signal) => r(signal)),
        );
        await new Promise<void>((resolve, reject) => {
          child.stdout.once('data', () => resolve());
          child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
        });
        // A random moment inside the loop of writes.
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        child.kill('SIGKILL');
        assert.equal(await exited, 'SIGKILL');
        const content = readFileSync(target, 'utf8');
        assert.ok(
          content === A || content === B,
          `after kill ${i}: ${content.length} bytes, neither version`,
        );
        JSON.parse(content);
        assert.equal(statSync(target).mode & 0o777, 0o600);
        if (readdirSync(sub).some((f) => f.endsWith('.tmp'))) midWrite++;
      };
      for (let i = 0; i < KILLS; i += PARALLEL) {
        await Promise.all(Array.from({ length: PARALLEL }, (_, k) => once(i + k)));
      }
      assert.ok(midWrite > 0, 'no kill landed in the middle of a write');
    });
  });
});
