/**
 * A codex upstream whose `auth:` names a folder or a glob: one upstream per auth file, named
 * `<name>-<file stem>` in file-name order, each serving with its own account through the gateway;
 * the listing is made on every build (a file added shows on the next one); a folder that cannot
 * give any account is a config error at the entry's `auth` key, with its line.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { ConfigError } from '../../core/config/config.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { writeAuthFile } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import { expandAuthFolder, globToRegExp } from '../../plugins/codex-upstream/auth-folder.js';

describe('plugin codex-upstream: auth folder or glob', () => {
  let dir: string;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let gateways: TestGateway[] = [];

  before(async () => {
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  after(async () => {
    await backend.close();
    await tokens.close();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-codex-folder-'));
    mkdirSync(join(dir, 'accounts'));
  });
  afterEach(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    gateways = [];
    rmSync(dir, { recursive: true, force: true });
  });

  /** An auth file for `account` in accounts/, named `file`. */
  function account(file: string, acct: string): void {
    writeAuthFile(join(dir, 'accounts'), tokens.login(acct), {}, file);
  }

  function config(auth: string, extra: Record<string, unknown> = {}): string {
    return codexGatewayConfig([
      { name: 'pool', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth, ...extra },
    ]);
  }

  /** Boots from YAML as if it were `<dir>/config.yaml`, so relative paths resolve against dir. */
  async function boot(yaml: string): Promise<TestGateway> {
    const g = await startGateway(yaml, {}, join(dir, 'config.yaml'));
    gateways.push(g);
    return g;
  }

  async function bootError(yaml: string): Promise<ConfigError> {
    const err = await boot(yaml).then(
      () => assert.fail('the gateway booted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }

  /** The line of `auth:` in the YAML text, 1-based. */
  function authLine(yaml: string): number {
    return yaml.split('\n').findIndex((l) => /^\s+auth:/.test(l)) + 1;
  }

  it('a folder: one upstream per *.json file, named pool-<stem> in file order, each serving with its own account', async () => {
    account('carol.json', 'acct-c');
    account('alice.json', 'acct-a');
    account('bob.json', 'acct-b');
    writeFileSync(join(dir, 'accounts', 'notes.txt'), 'not an account');
    writeFileSync(join(dir, 'accounts', '.alice.json.tapgate-1-ab.tmp'), '{}'); // a write in progress
    const g = await boot(config('accounts/', { models: ['gpt-5'], maxConcurrency: 3 }));
    const names = g.gw.pool.upstreams.map((u) => u.name);
    assert.deepEqual(names, ['pool-alice', 'pool-bob', 'pool-carol']);
    for (const u of g.gw.pool.upstreams) {
      assert.deepEqual(u.models, ['gpt-5'], 'the entry’s other keys apply to each');
      assert.equal(u.maxConcurrency, 3);
    }

    const client = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${g.url}/v1`, maxRetries: 0 });
    const before = backend.requests.length;
    for (let i = 0; i < 6; i++) {
      const r = await client.responses.create({ model: 'gpt-5', input: `hi ${i}` });
      assert.equal(r.status, 'completed');
    }
    const used = backend.requests.slice(before).map((r) => r.headers['chatgpt-account-id']);
    assert.equal(used.length, 6);
    assert.deepEqual(
      [...new Set(used)].sort(),
      ['acct-a', 'acct-b', 'acct-c'],
      'round-robin over three accounts',
    );
  });

  it('a glob: only matching files, in name order; names are the same on every boot', async () => {
    account('team-b.json', 'acct-tb');
    account('team-a.json', 'acct-ta');
    account('solo.json', 'acct-solo');
    const yaml = config('accounts/team-*.json');
    const first = (await boot(yaml)).gw.pool.upstreams.map((u) => u.name);
    assert.deepEqual(first, ['pool-team-a', 'pool-team-b']);
    const again = (await boot(yaml)).gw.pool.upstreams.map((u) => u.name);
    assert.deepEqual(again, first);
  });

  it('lists the folder on every build: a file added is there on the next one', async () => {
    account('one.json', 'acct-1');
    assert.deepEqual(
      (await boot(config(join(dir, 'accounts')))).gw.pool.upstreams.map((u) => u.name),
      ['pool-one'],
    );
    account('two.json', 'acct-2');
    assert.deepEqual(
      (await boot(config(join(dir, 'accounts')))).gw.pool.upstreams.map((u) => u.name),
      ['pool-one', 'pool-two'],
    );
  });

  it('a single file stays one upstream under its own name', async () => {
    account('only.json', 'acct-only');
    const g = await boot(config('accounts/only.json'));
    assert.deepEqual(
      g.gw.pool.upstreams.map((u) => u.name),
      ['pool'],
    );
  });

  describe('config errors at the entry’s auth key, with its line', () => {
    const file = () => join(dir, 'config.yaml');

    it('a folder that does not exist', async () => {
      const yaml = config('missing/');
      const err = await bootError(yaml);
      assert.match(
        err.message,
        new RegExp(
          `config\\.yaml:${authLine(yaml)}:\\d+ upstreams\\[0\\]\\.auth: auth "missing/": the folder .*missing cannot be read \\(ENOENT\\)`,
        ),
      );
      assert.equal(err.file, file());
    });

    it('an empty folder, or a glob that matches nothing', async () => {
      const yaml = config('accounts/');
      const err = await bootError(yaml);
      assert.match(
        err.message,
        new RegExp(
          `:${authLine(yaml)}:\\d+ upstreams\\[0\\]\\.auth: auth "accounts/" matches no auth file .*one account per \\*\\.json file.*tapgate login codex --out accounts/NAME\\.json`,
        ),
      );
      account('a.json', 'acct-a');
      const glob = await bootError(config('accounts/b*.json'));
      assert.match(glob.message, /upstreams\[0\]\.auth: auth "accounts\/b\*\.json" matches no auth file/);
    });

    it('a * outside the last part of the path', async () => {
      const err = await bootError(config('acc*/a.json'));
      assert.match(
        err.message,
        /upstreams\[0\]\.auth: auth "acc\*\/a\.json": only the last part of the path may hold \*/,
      );
    });

    it('a file whose name would make an invalid upstream name', async () => {
      account('bad name.json', 'acct-x');
      const err = await bootError(config('accounts/'));
      assert.match(
        err.message,
        /auth file "bad name\.json" in "accounts\/" would give the upstream name "pool-bad name"/,
      );
    });

    it('a derived name that another upstream already has', async () => {
      account('a.json', 'acct-a');
      account('other.json', 'acct-o');
      const yaml = codexGatewayConfig([
        {
          name: 'pool-a',
          type: 'codex',
          baseUrl: backend.baseUrl,
          tokenUrl: tokens.url,
          auth: 'accounts/other.json',
        },
        { name: 'pool', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth: 'accounts/' },
      ]);
      const err = await bootError(yaml);
      assert.match(err.message, /upstreams\[1\]\.name: duplicate upstream name "pool-a"/);
    });
  });

  it('the glob matcher: * within one name part, never a leading dot', () => {
    const re = globToRegExp('*.json');
    assert.ok(re.test('a.json'));
    assert.ok(!re.test('.a.json'));
    assert.ok(!re.test('a.json.tmp'));
    assert.ok(globToRegExp('team-*.json').test('team-x.y.json'));
    assert.ok(!globToRegExp('team-*.json').test('xteam-a.json'));
    assert.deepEqual(
      expandAuthFolder({ name: 'x', auth: undefined }, { configDir: dir }),
      [{ name: 'x', auth: undefined }],
      'no auth: the entry itself',
    );
  });
});
