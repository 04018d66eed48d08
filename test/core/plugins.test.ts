import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../core/config/config.js';
import {
  DuplicatePluginError,
  PluginApplyError,
  PluginDependencyError,
  PluginError,
  PluginLoadError,
  PluginNotFoundError,
  PluginOptionsError,
} from '../../core/loader/plugin-errors.js';
import { basicConfig, CLIENT_KEY, LogCapture, startGateway, type TestGateway } from '../helpers/gateway.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';
import { createGateway } from '../../app/gateway.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = join(ROOT, 'test/fixtures');
/** The config file's name (never read: only its directory counts), so `./plugins/x.js` names a fixture. */
const FIXTURE_CONFIG = join(FIXTURES, 'gateway.yaml');

/** Boots from YAML and expects it to fail with `cls`; returns the error. */
async function bootFails<E extends PluginError>(
  cls: new (...args: never[]) => E,
  yaml: string,
  file = FIXTURE_CONFIG,
): Promise<E> {
  const loaded = parseConfig(yaml, file, { TAPGATE_TEST_KEY: CLIENT_KEY });
  loaded.config.server.port = 0;
  loaded.config.usage.enabled = false; // no usage database in the repository
  try {
    const gw = await createGateway(loaded, { logDestination: new LogCapture() });
    await gw.close(0);
  } catch (err) {
    assert.ok(
      err instanceof cls,
      `expected ${cls.name}, got ${(err as Error).name}: ${(err as Error).message}`,
    );
    assert.ok(err instanceof PluginError);
    assert.equal(err.name, cls.name);
    return err;
  }
  assert.fail(`expected ${cls.name}, but the gateway booted`);
}

const running: TestGateway[] = [];
async function boot(yaml: string, file = FIXTURE_CONFIG): Promise<TestGateway> {
  const tg = await startGateway(yaml, {}, file);
  running.push(tg);
  return tg;
}

/** The `x-tap-order` header of a request the gateway answers locally (a 404: no route plugin). */
async function tapOrder(tg: TestGateway): Promise<string | null> {
  const res = await fetch(`${tg.url}/nowhere`);
  await res.arrayBuffer();
  assert.equal(res.status, 404);
  return res.headers.get('x-tap-order');
}

const plugins = (...lines: string[]) => `plugins:\n${lines.map((l) => `  ${l}\n`).join('')}`;
const withStage = (path: string, stage: string) => `- name: ${path}\n    options:\n      stage: ${stage}`;

describe('plugin loading', () => {
  afterEach(async () => {
    await Promise.all(running.splice(0).map((tg) => tg.close()));
  });

  describe('named boot errors', () => {
    it('PluginNotFoundError: an unknown name, with its line and the built-in names', async () => {
      const err = await bootFails(PluginNotFoundError, plugins('- request-id', '- reqest-id'));
      assert.equal(err.where, `${FIXTURE_CONFIG}:3:5`);
      assert.match(
        err.message,
        /^\S+gateway\.yaml:3:5 unknown plugin "reqest-id"\. Built-in plugins: .*request-id/,
      );
      assert.match(err.message, /named by a path starting with \.\/ or \//);
    });

    it('PluginLoadError: a path that does not exist, resolved and named', async () => {
      const err = await bootFails(PluginLoadError, plugins('- ./plugins/missing.js'));
      assert.equal(
        err.message,
        `${FIXTURE_CONFIG}:2:5 plugin module ${join(FIXTURES, 'plugins/missing.js')} does not exist`,
      );
    });

    it('PluginLoadError: a module that throws while it is imported', async () => {
      const err = await bootFails(
        PluginLoadError,
        plugins('- request-id', '- ./plugins/throws-on-import.js'),
      );
      assert.match(
        err.message,
        /gateway\.yaml:3:5 plugin module \S+throws-on-import\.js failed to load: fixture exploded at import$/,
      );
      assert.equal((err.cause as Error).message, 'fixture exploded at import');
    });

    it('PluginLoadError: a module that exports no plugin class', async () => {
      const err = await bootFails(PluginLoadError, plugins('- ./plugins/no-plugin.js'));
      assert.match(
        err.message,
        /plugin module \S+no-plugin\.js exports no plugin class \(a class with static meta = \{ name \} and an apply\(\) method\)$/,
      );
    });

    it('PluginDependencyError: a dependency that is not enabled', async () => {
      const err = await bootFails(PluginDependencyError, plugins('- request-id', '- ./plugins/dep-child.js'));
      assert.equal(
        err.message,
        `${FIXTURE_CONFIG}:3:5 plugin "dep-child" depends on "dep-base", which is not enabled: add it to plugins in config.yaml`,
      );
    });

    it('PluginDependencyError: a dependency cycle, named link by link', async () => {
      const err = await bootFails(
        PluginDependencyError,
        plugins('- ./plugins/cycle-a.js', '- ./plugins/cycle-b.js'),
      );
      assert.match(err.message, /plugin dependency cycle: cycle-a → cycle-b → cycle-a$/);
    });

    it('PluginOptionsError: options that fail the schema, with the key path and line of each', async () => {
      const yaml = plugins(
        '- request-id',
        '- name: ./plugins/alpha.js',
        '  options:',
        '    stage: MIDDLE',
        '    colour: red',
      );
      const err = await bootFails(PluginOptionsError, yaml);
      const lines = err.message.split('\n');
      assert.equal(lines[0], 'invalid options for plugin "alpha":');
      assert.equal(lines.length, 3, err.message);
      assert.match(
        lines[1]!,
        /^ {2}- \S+gateway\.yaml:5:14 plugins\[1\]\.options\.stage: Invalid option: expected one of "EARLY"\|"DEFAULT"\|"LATE"$/,
      );
      assert.equal(lines[2], `  - ${FIXTURE_CONFIG}:6:7 plugins[1].options.colour: unknown key`);
    });

    it('PluginOptionsError: options given to a plugin that has no schema', async () => {
      const err = await bootFails(
        PluginOptionsError,
        plugins('- name: request-id', '  options:', '    header: x-id'),
      );
      assert.equal(err.message, `${FIXTURE_CONFIG}:4:7 plugin "request-id" takes no options`);
      // An empty options mapping is not "options given".
      await boot(plugins('- name: request-id', '  options: {}'));
    });

    it('DuplicatePluginError: the same plugin enabled twice, at the second entry', async () => {
      const err = await bootFails(
        DuplicatePluginError,
        plugins('- request-id', '- error-codes', '- name: request-id'),
      );
      assert.equal(err.message, `${FIXTURE_CONFIG}:4:5 plugin "request-id" is enabled twice`);
      // By path too: two paths to one module are one plugin.
      const byPath = await bootFails(
        DuplicatePluginError,
        plugins('- ./plugins/alpha.js', `- ${join(FIXTURES, 'plugins/alpha.js')}`),
      );
      assert.match(byPath.message, /gateway\.yaml:3:5 plugin "alpha" is enabled twice$/);
    });

    it('PluginApplyError: apply() throws; the message names the plugin and keeps the cause', async () => {
      const err = await bootFails(PluginApplyError, plugins('- request-id', '- ./plugins/apply-throws.js'));
      assert.equal(
        err.message,
        `${FIXTURE_CONFIG}:3:5 plugin "apply-throws" failed in apply(): no database at boot`,
      );
      assert.equal((err.cause as Error).message, 'no database at boot');
    });
  });

  describe('order', () => {
    it('runs taps of one hook in stage order (EARLY, DEFAULT, LATE), whatever the config order', async () => {
      let tg = await boot(
        plugins(withStage('./plugins/alpha.js', 'LATE'), withStage('./plugins/beta.js', 'EARLY')),
      );
      assert.equal(await tapOrder(tg), 'beta,alpha');
      tg = await boot(
        plugins(withStage('./plugins/alpha.js', 'EARLY'), withStage('./plugins/beta.js', 'LATE')),
      );
      assert.equal(await tapOrder(tg), 'alpha,beta');
      tg = await boot(
        plugins(withStage('./plugins/beta.js', 'LATE'), withStage('./plugins/alpha.js', 'DEFAULT')),
      );
      assert.equal(await tapOrder(tg), 'alpha,beta');
    });

    it('keeps the config order within one stage', async () => {
      let tg = await boot(plugins('- ./plugins/beta.js', '- ./plugins/alpha.js'));
      assert.equal(await tapOrder(tg), 'beta,alpha');
      tg = await boot(plugins('- ./plugins/alpha.js', '- ./plugins/beta.js'));
      assert.equal(await tapOrder(tg), 'alpha,beta');
    });

    it('a plugin tap at Stage.DEFAULT replaces the core default at Stage.FALLBACK', async () => {
      const core = await boot(plugins('- request-id'));
      const plain = await fetch(`${core.url}/nowhere`);
      assert.equal(plain.status, 404);
      assert.deepEqual(await plain.json(), {
        error: {
          message: 'No route for GET /nowhere',
          type: 'invalid_request_error',
          param: null,
          code: 'not_found',
        },
      });

      const tg = await boot(plugins('- request-id', '- ./plugins/error-override.js'));
      const res = await fetch(`${tg.url}/nowhere`);
      assert.equal(res.status, 404);
      assert.equal(res.headers.get('x-error-writer'), 'error-override');
      assert.equal(await res.text(), 'custom 404 NOT_FOUND');
    });

    it('dependsOn applies a dependency before its dependent, even when listed after it', async () => {
      const tg = await boot(
        plugins('- ./plugins/dep-child.js', '- ./plugins/alpha.js', '- ./plugins/dep-base.js'),
      );
      // All three tap `start` at DEFAULT, so the header shows the order of apply().
      assert.equal(await tapOrder(tg), 'dep-base,dep-child,alpha');
      const listening = tg.logs.find((l) => l.msg === 'tapgate listening');
      assert.deepEqual(listening?.plugins, ['dep-base', 'dep-child', 'alpha']);
    });
  });

  describe('plugins by path', () => {
    it('resolves a relative path from the config file’s directory', async () => {
      const yaml = plugins(withStage('./plugins/alpha.js', 'EARLY'));
      const tg = await boot(yaml, FIXTURE_CONFIG);
      assert.equal(await tapOrder(tg), 'alpha');

      // The same YAML in another directory looks for the plugin there.
      const elsewhere = join(tmpdir(), 'tapgate-nowhere', 'gateway.yaml');
      const err = await bootFails(PluginLoadError, yaml, elsewhere);
      assert.match(
        err.message,
        new RegExp(
          `plugin module ${join(tmpdir(), 'tapgate-nowhere', 'plugins', 'alpha.js').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} does not exist`,
        ),
      );
    });

    it('loads an absolute path, whatever the config file’s directory', async () => {
      const tg = await boot(
        plugins(`- ${join(FIXTURES, 'plugins/beta.js')}`),
        join(tmpdir(), 'gateway.yaml'),
      );
      assert.equal(await tapOrder(tg), 'beta');
    });

    it('hands a plain JS plugin its validated options, even with a default parameter', async () => {
      const tg = await boot(
        plugins('- name: ./plugins/default-options.js', '  options:', '    greeting: hello'),
      );
      const res = await fetch(`${tg.url}/nowhere`);
      await res.arrayBuffer();
      assert.equal(res.headers.get('x-greeting'), 'hello');
    });
  });

  it('seals the hooks after boot: tapping later throws', async () => {
    const tg = await boot(plugins('- ./plugins/alpha.js'));
    const hooks = tg.gw.hooks;
    assert.throws(
      () => hooks.start.tap('late', () => {}),
      /hooks are sealed after boot; tap them in a plugin apply\(\)/,
    );
    assert.throws(
      () => hooks.request.tapPromise('late', async () => undefined),
      /hooks are sealed after boot/,
    );
    assert.throws(
      () => hooks.errorResponse.tap({ name: 'late', stage: 0 }, () => true),
      /hooks are sealed after boot/,
    );
    assert.ok(Object.isFrozen(hooks));
    assert.throws(() => {
      (hooks as unknown as Record<string, unknown>).start = {};
    }, TypeError);
    // The taps made in apply() still run.
    assert.equal(await tapOrder(tg), 'alpha');
  });
});

describe('examples/audit-plugin.js', () => {
  let upstream: TestUpstream;
  let tmp: string;
  const gateways: TestGateway[] = [];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tapgate-audit-'));
    upstream = await startUpstream((_req, res) => {
      writeSseHead(res);
      for (const f of happyStream('resp_audit')) res.write(f);
      res.end();
    });
  });
  after(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close()));
    await upstream.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** A config file at the repository root, so the plugin is named as in config.yaml. */
  const auditConfig = (options: string) =>
    basicConfig(upstream.url, `  - name: ./examples/audit-plugin.js\n    options:\n${options}`);

  it('stamps x-tapgate-audit and writes one audit line per finished request', async () => {
    const file = join(tmp, 'audit.log');
    const tg = await startGateway(
      auditConfig(`      file: ${file}\n      name: edge-1\n`),
      {},
      join(ROOT, 'config.yaml'),
    );
    gateways.push(tg);

    const ok = await fetch(`${tg.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', input: 'hi', stream: true }),
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-tapgate-audit'), 'edge-1');
    assert.match(await ok.text(), /event: response\.completed/);
    const okId = ok.headers.get('x-request-id');
    assert.ok(okId);

    const denied = await fetch(`${tg.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('x-tapgate-audit'), 'edge-1');
    await denied.arrayBuffer();
    const deniedId = denied.headers.get('x-request-id');

    // close() waits for in-flight requests (so `finish` has run), then the plugin's close() flushes the file.
    gateways.splice(gateways.indexOf(tg), 1);
    await tg.close(5000);
    const text = readFileSync(file, 'utf8');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2, text);
    const byId = new Map(lines.map((l) => [l.id, l]));
    assert.deepEqual(
      { ...byId.get(okId), time: undefined, ms: undefined },
      {
        id: okId,
        client: 'tester',
        route: 'responses',
        status: 200,
        outcome: 'ok',
        upstream: 'up1',
        time: undefined,
        ms: undefined,
      },
    );
    assert.deepEqual(
      { ...byId.get(deniedId), time: undefined, ms: undefined },
      {
        id: deniedId,
        client: null,
        route: 'responses',
        status: 401,
        outcome: 'error',
        upstream: null,
        time: undefined,
        ms: undefined,
      },
    );
    assert.ok(!text.includes(CLIENT_KEY), 'the audit log names the client, never its key');
  });

  it('appends to an existing file and defaults the header name', async () => {
    const file = join(tmp, 'append.log');
    for (let run = 1; run <= 2; run++) {
      const tg = await startGateway(auditConfig(`      file: ${file}\n`), {}, join(ROOT, 'config.yaml'));
      gateways.push(tg);
      const res = await fetch(`${tg.url}/v1/models`, { headers: { 'x-api-key': CLIENT_KEY } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-tapgate-audit'), 'tapgate');
      await res.arrayBuffer();
      gateways.splice(gateways.indexOf(tg), 1);
      await tg.close(5000);
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, run);
      assert.equal((JSON.parse(lines[run - 1]!) as Record<string, unknown>).route, 'models');
    }
  });

  it('refuses bad options with the key path and line, and an unwritable file at boot', async () => {
    const file = join(ROOT, 'config.yaml');
    const err = await bootFails(PluginOptionsError, auditConfig('      fiel: ./audit.log\n'), file);
    assert.match(err.message, /^invalid options for plugin "audit":\n/);
    assert.match(
      err.message,
      /config\.yaml:22:7 plugins\[3\]\.options\.file: Invalid input: expected string, received undefined/,
    );
    assert.match(err.message, /config\.yaml:22:7 plugins\[3\]\.options\.fiel: unknown key/);

    const apply = await bootFails(
      PluginApplyError,
      auditConfig(`      file: ${join(tmp, 'no-such-dir', 'audit.log')}\n`),
      file,
    );
    assert.match(apply.message, /config\.yaml:20:5 plugin "audit" failed in apply\(\): ENOENT/);
  });
});
