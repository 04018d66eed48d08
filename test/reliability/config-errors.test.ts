/**
 * Config errors through the real CLI (issue 7): a codex upstream's auth.json that is missing,
 * unreadable, not JSON or holds a corrupt token; a bad plugin path; a plugin that fails in its
 * constructor or in `apply`. Each one must exit 1 with a one-line `tapgate: <Error>: …` on stderr
 * that names the file and the key (and the config line where there is one), with no stack trace and
 * no token text, and must leave the auth file byte for byte as it was.
 *
 * Every case is its own process; they run a few at a time in `before` (each takes about a second of
 * CPU), then each `it` checks one outcome. Not repeated here: test/core/cli.test.ts (a bad key, an
 * unknown plugin name, a missing config file) and the in-process boot errors of
 * test/plugins/codex-credentials.test.ts and test/core/plugins.test.ts.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { parseConfig } from '../../core/config/config.js';
import { PluginError } from '../../core/loader/plugin-errors.js';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { accessToken, writeAuthFile } from '../helpers/codex-jwt.js';
import { LogCapture } from '../helpers/gateway.js';
import { registerSecret } from '../helpers/secret-scan.js';
import { createGateway } from '../../app/gateway.js';

/** Token text planted in broken auth files: it must never be printed. */
const PLANTED = 'sk-planted-token-text-0123456789abcdef';
registerSecret(PLANTED);

/** Never contacted: boot fails (or, for the control, serves nothing) before any request. */
const NOWHERE = 'http://127.0.0.1:9';

interface Outcome {
  code: number | null;
  stderr: string;
  stdout: string;
}

interface Case {
  name: string;
  /** Writes what the case needs into `dir`; returns the config file and the auth file to watch. */
  setup(dir: string): { config: string; auth?: string };
  /** Checks stderr (after the common checks). */
  expect(stderr: string, files: { config: string; auth?: string }): void;
}

let root: string;
const results = new Map<
  string,
  { outcome: Outcome; files: { config: string; auth?: string }; before?: Snapshot }
>();

interface Snapshot {
  bytes: Buffer;
  mode: number;
}

/** The file's bytes and permission bits; undefined when it is not a readable regular file. */
function snapshot(path: string): Snapshot | undefined {
  try {
    const st = statSync(path);
    if (!st.isFile()) return undefined;
    const mode = st.mode & 0o777;
    chmodSync(path, 0o600);
    const bytes = readFileSync(path);
    chmodSync(path, mode);
    return { bytes, mode };
  } catch {
    return undefined;
  }
}

function codexConfig(dir: string, auth: string): string {
  const file = join(dir, 'tapgate.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      server: { host: '127.0.0.1', port: 0 },
      upstreams: [
        {
          name: 'cx',
          type: 'codex',
          auth,
          baseUrl: `${NOWHERE}/backend-api/codex`,
          tokenUrl: `${NOWHERE}/oauth/token`,
        },
      ],
      plugins: ['responses-routes'],
    }),
  );
  return file;
}

/** A gateway config whose `plugins:` lists `entry` second, at line 11 column 5. */
function pluginConfig(dir: string, entry: string): string {
  const file = join(dir, 'tapgate.yaml');
  writeFileSync(
    file,
    [
      'server:',
      '  host: 127.0.0.1',
      '  port: 0',
      'upstreams:',
      '  - name: up1',
      '    type: openai',
      `    baseUrl: ${NOWHERE}/v1`,
      '    apiKey: sk-upstream-config-errors-secret',
      'plugins:',
      '  - responses-routes',
      `  - ${entry}`,
      '',
    ].join('\n'),
  );
  return file;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** An auth.json with these tokens (valid ones unless overridden), written the way Codex CLI does. */
function authWith(dir: string, tokens: Record<string, unknown>): string {
  return writeAuthFile(dir, {
    access_token: accessToken('acct-1'),
    refresh_token: `rt-${PLANTED}`,
    account_id: 'acct-1',
    ...tokens,
  } as never);
}

function rawAuth(dir: string, text: string): string {
  const path = join(dir, 'auth.json');
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

/** `codex upstream "cx": auth file <path>` then `rest`, as the whole of stderr. */
function credentialsError(rest: RegExp) {
  return (stderr: string, files: { auth?: string }) =>
    assert.match(
      stderr,
      new RegExp(
        `^tapgate: CodexCredentialsError: codex upstream "cx": auth file ${esc(files.auth!)}${rest.source}\\n$`,
      ),
    );
}

const AS_ROOT = process.getuid?.() === 0;

const CASES: Case[] = [
  {
    name: 'auth.json missing',
    setup: (dir) => ({
      config: codexConfig(dir, './no-such-dir/auth.json'),
      auth: join(dir, 'no-such-dir/auth.json'),
    }),
    expect: credentialsError(/ cannot be read \(ENOENT\): log in with `codex login`, or fix the path/),
  },
  {
    // chmod 000 stops every user but root; as root, a symlink that points at itself is unreadable too
    // (a directory no longer is: it is a folder of accounts).
    name: AS_ROOT
      ? 'auth.json unreadable (a symlink loop: tests run as root)'
      : 'auth.json unreadable (mode 000)',
    setup: (dir) => {
      let auth = join(dir, 'auth.json');
      if (AS_ROOT) symlinkSync('auth.json', auth);
      else {
        auth = authWith(dir, {});
        chmodSync(auth, 0o000);
      }
      return { config: codexConfig(dir, auth), auth };
    },
    expect: credentialsError(AS_ROOT ? / cannot be read \(ELOOP\)/ : / cannot be read \(EACCES\)/),
  },
  {
    name: 'auth.json not JSON (cut off inside a token)',
    setup: (dir) => {
      const auth = rawAuth(dir, `{"tokens": {"access_token": "${PLANTED}", "refresh_`);
      return { config: codexConfig(dir, auth), auth };
    },
    expect: credentialsError(/ is not valid JSON \(a JSON object is expected\)/),
  },
  {
    name: 'access_token not a JWT',
    setup: (dir) => {
      const auth = authWith(dir, { access_token: `${PLANTED}.not-a.jwt` });
      return { config: codexConfig(dir, auth), auth };
    },
    expect: credentialsError(
      /: tokens\.access_token is not a JWT with an exp claim, so its expiry cannot be read \(corrupt or truncated\?\)/,
    ),
  },
  {
    name: 'refresh_token missing',
    setup: (dir) => {
      const auth = authWith(dir, { refresh_token: undefined });
      return { config: codexConfig(dir, auth), auth };
    },
    expect: credentialsError(/: tokens\.refresh_token is missing or empty/),
  },
  {
    name: 'refresh_token of the wrong type',
    setup: (dir) => {
      const auth = authWith(dir, { refresh_token: { value: PLANTED } });
      return { config: codexConfig(dir, auth), auth };
    },
    expect: credentialsError(/: tokens\.refresh_token must be a string/),
  },
  {
    name: 'a plugin path that does not exist',
    setup: (dir) => ({ config: pluginConfig(dir, './plugins/no-such-plugin.mjs') }),
    expect: (stderr, { config }) =>
      assert.equal(
        stderr,
        `tapgate: PluginLoadError: ${config}:11:5 plugin module ${join(config, '..', 'plugins/no-such-plugin.mjs')} does not exist\n`,
      ),
  },
  {
    name: 'a plugin that throws in apply',
    setup: (dir) => {
      writeFileSync(
        join(dir, 'throws.mjs'),
        "export default class Throws {\n  static meta = { name: 'throws' };\n  apply() {\n    throw new Error('no database at boot');\n  }\n}\n",
      );
      return { config: pluginConfig(dir, './throws.mjs') };
    },
    expect: (stderr, { config }) =>
      assert.equal(
        stderr,
        `tapgate: PluginApplyError: ${config}:11:5 plugin "throws" failed in apply(): no database at boot\n`,
      ),
  },
  {
    name: 'a plugin whose constructor throws',
    setup: (dir) => {
      writeFileSync(
        join(dir, 'ctor.mjs'),
        "export default class Ctor {\n  static meta = { name: 'ctor' };\n  constructor() {\n    throw new Error('license file missing');\n  }\n  apply() {}\n}\n",
      );
      return { config: pluginConfig(dir, './ctor.mjs') };
    },
    expect: (stderr, { config }) =>
      assert.equal(
        stderr,
        `tapgate: PluginLoadError: ${config}:11:5 plugin "ctor" could not be constructed: license file missing\n`,
      ),
  },
  {
    // The old README's plain-JS plugin (it imports zod) saved outside the checkout. The .js file in a bare
    // folder loads now (tsx's CommonJS loader); zod does not resolve from there, and the error says so.
    name: 'a plugin outside the checkout that imports zod',
    setup: (dir) => {
      writeFileSync(
        join(dir, 'zod-plugin.js'),
        "import { z } from 'zod';\nexport default class Z {\n  static meta = { name: 'z', options: z.object({}) };\n  apply() {}\n}\n",
      );
      return { config: pluginConfig(dir, './zod-plugin.js') };
    },
    expect: (stderr, { config }) => {
      const file = join(config, '..', 'zod-plugin.js');
      assert.match(
        stderr,
        new RegExp(
          `^tapgate: PluginLoadError: ${esc(config)}:11:5 plugin module ${esc(file)} failed to load: `,
        ),
      );
      assert.match(
        stderr,
        /\(zod resolves from the plugin's folder, not from tapgate's: install it there, or use any object with a safeParse\(value\) method as meta\.options\)\n$/,
      );
    },
  },
];

/** Runs `tapgate --config <config>` to its exit. */
async function run(config: string): Promise<Outcome> {
  const cli = runCli(['--config', config]);
  const { code } = await cli.closed;
  return { code, stderr: cli.stderr(), stdout: cli.stdout() };
}

/** Runs `tasks` with at most `n` at a time (two shared cores: more only adds memory). */
async function limited(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  const queue = [...tasks];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await t();
    }),
  );
}

describe('reliability: config errors through the CLI', function () {
  this.timeout(60_000);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tapgate-config-errors-'));
    await limited(
      CASES.map((c, i) => async () => {
        const dir = join(root, `case-${i}`);
        mkdirSync(dir);
        const files = c.setup(dir);
        const before = files.auth === undefined ? undefined : snapshot(files.auth);
        results.set(c.name, { outcome: await run(files.config), files, before });
      }),
      2,
    );
  });
  after(() => {
    killStrayClis();
    rmSync(root, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.name}: exit 1, one line naming the file and key, no stack, nothing lost`, () => {
      const { outcome, files, before } = results.get(c.name)!;
      const { code, stderr, stdout } = outcome;
      assert.equal(code, 1, `exit ${code}\nstderr: ${stderr}\nstdout: ${stdout}`);
      c.expect(stderr, files);
      assert.doesNotMatch(stderr, /\n\s+at /, 'a stack trace was printed');
      assert.doesNotMatch(stderr, /failed to start/, 'an unexpected error');
      assert.equal(stderr.trimEnd().split('\n').length, 1, stderr);
      assert.ok(!stderr.includes(PLANTED) && !stdout.includes(PLANTED), 'token text was printed');
      assert.doesNotMatch(stdout, /tapgate listening/);
      if (files.auth !== undefined) {
        const after = snapshot(files.auth);
        assert.deepEqual(after, before, 'the auth file changed');
      }
    });
  }
});

/**
 * The rest of the plugin loader's failures, in process (one CLI start costs a second of CPU): the
 * same named errors, which the CLI prints as one line (see above), with the entry's line.
 */
describe('reliability: plugin boot errors (in process)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-plugin-errors-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function bootError(file: string, source: string, entry = `./${file}`): Promise<PluginError> {
    if (source !== '') writeFileSync(join(dir, file), source);
    const config = join(dir, 'tapgate.yaml');
    const loaded = parseConfig(readFileSync(pluginConfig(dir, entry), 'utf8'), config, {});
    try {
      const gw = await createGateway(loaded, { logDestination: new LogCapture() });
      await gw.close(0);
    } catch (err) {
      assert.ok(err instanceof PluginError, `not a named boot error: ${(err as Error).stack}`);
      assert.ok(err.message.startsWith(`${config}:11:5 `), err.message);
      return err;
    }
    return assert.fail('the gateway booted');
  }

  it('an async apply() that rejects with a string: the string is the reason', async () => {
    const err = await bootError(
      'rejects.mjs',
      "export default class Rejects {\n  static meta = { name: 'rejects' };\n  async apply() {\n    throw 'queue unreachable';\n  }\n}\n",
    );
    assert.equal(err.name, 'PluginApplyError');
    assert.match(err.message, /plugin "rejects" failed in apply\(\): queue unreachable$/);
  });

  it('a constructor that throws a string: a named error, not a crash', async () => {
    const err = await bootError(
      'ctor-string.mjs',
      "export default class CtorString {\n  static meta = { name: 'ctor-string' };\n  constructor(options) {\n    throw 'bad options';\n  }\n  apply() {}\n}\n",
    );
    assert.equal(err.name, 'PluginLoadError');
    assert.match(err.message, /plugin "ctor-string" could not be constructed: bad options$/);
  });

  it('a plugin path that is a directory', async () => {
    mkdirSync(join(dir, 'plugin-dir'));
    const err = await bootError('plugin-dir', '');
    assert.equal(err.name, 'PluginLoadError');
    assert.match(err.message, new RegExp(`plugin module ${esc(join(dir, 'plugin-dir'))} failed to load: `));
  });
});
