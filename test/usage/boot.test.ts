/**
 * Issue 14: the `usage` section at boot. Strict, with errors naming the key path and line; a file
 * that cannot be the database (not SQLite, a newer schema, a folder that cannot exist) stops the boot
 * with an error naming `usage.path`, its line and the file, and the file is left byte for byte as
 * it was; a missing folder is created; `enabled: false` writes nothing. Plugins read the records
 * through `PluginContext.usage`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BUILTINS } from '../../app/builtin-plugins.js';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { Gateway } from '../../core/gateway.js';
import type { PluginContext } from '../../core/kernel/plugin-api.js';
import { CLIENT_KEY, LogCapture } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { countRecords, usageTempDir } from '../helpers/usage.js';

function issues(yaml: string): string[] {
  try {
    parseConfig(yaml, 'config.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').slice(1);
  }
  assert.fail('expected the config to be refused');
}

/** Boots from `yaml` (its file in `dir`); resolves with the gateway or the boot error. */
async function boot(yaml: string, file: string, registry = BUILTINS): Promise<Gateway | Error> {
  const loaded = parseConfig(yaml, file, { TAPGATE_TEST_KEY: CLIENT_KEY });
  try {
    return await Gateway.create(loaded, { builtins: registry, logDestination: new LogCapture() });
  } catch (err) {
    return err as Error;
  }
}

const UPSTREAM = {
  name: 'up1',
  type: 'openai',
  baseUrl: 'http://127.0.0.1:9/v1',
  apiKey: upstreamKey('up1'),
};

describe('usage: config and boot', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  const tmp = usageTempDir('usage-boot');

  it('defaults, and config errors that name the key path and line', () => {
    const { config } = parseConfig('', 'config.yaml', {});
    assert.deepEqual(config.usage, {
      enabled: true,
      path: 'data/usage.db',
      retention: 90 * 86_400_000,
      flushInterval: 1000,
    });
    assert.equal(
      parseConfig('usage:\n  retention: 400d\n', 'c.yaml', {}).config.usage.retention,
      400 * 86_400_000,
    );
    assert.deepEqual(issues('usage:\n  retention: 2w\n'), [
      '  - config.yaml:2:14 usage.retention: expected a period such as 36h or 90d, got "2w"',
    ]);
    assert.deepEqual(issues('usage:\n  retention: 12h\n'), [
      '  - config.yaml:2:14 usage.retention: at least 1d',
    ]);
    assert.deepEqual(issues('usage:\n  flushInterval: 5ms\n'), [
      '  - config.yaml:2:18 usage.flushInterval: at least 10ms',
    ]);
    assert.deepEqual(issues('usage:\n  enabled: true\n  pth: x.db\n'), [
      '  - config.yaml:3:3 usage.pth: unknown key',
    ]);
    assert.match(issues('usage:\n  enabled: sure\n')[0]!, /^ {2}- config\.yaml:2:12 usage\.enabled: /);
    assert.match(issues('usage:\n  path: ""\n')[0]!, /^ {2}- config\.yaml:2:9 usage\.path: /);
  });

  for (const [name, make, reason] of [
    [
      'not a database',
      (f: string) => writeFileSync(f, 'these are notes, not SQLite\n'.repeat(300)),
      /file is not a database/,
    ],
    [
      'a newer schema',
      (f: string) => {
        const db = new Database(f);
        db.pragma('user_version = 99');
        db.close();
      },
      /its schema version 99 is newer than this tapgate's \(1\)/,
    ],
  ] as const) {
    it(`a file that is ${name}: a boot error naming usage.path, its line and the file; the file is untouched`, async () => {
      const dir = join(tmp.dir(), name.replace(/ /g, '-'));
      mkdirSync(dir);
      const file = join(dir, 'usage.db');
      make(file);
      const before = readFileSync(file);
      const config = join(dir, 'tapgate.yaml');
      const yaml = gatewayConfig({ upstreams: [UPSTREAM], usage: { path: 'usage.db' } });
      const line = yaml.split('\n').indexOf('  path: usage.db') + 1;
      const err = await boot(yaml, config);
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.issues.length, 1);
      assert.equal(err.issues[0]!.line, line);
      assert.match(
        err.message.split('\n')[1]!,
        new RegExp(`^ {2}- ${config}:${line}:9 usage\\.path: cannot use ${file} as the usage database: `),
      );
      assert.match(err.message, reason);
      assert.deepEqual(readFileSync(file), before, 'the file is byte for byte as it was');
      assert.deepEqual(readdirSync(dir).sort(), ['usage.db'], 'no -wal or -shm beside it');
    });
  }

  it('a folder that cannot be made: a boot error naming the file', async () => {
    const dir = tmp.dir();
    writeFileSync(join(dir, 'plain-file'), 'x');
    const err = await boot(
      gatewayConfig({ upstreams: [UPSTREAM], usage: { path: 'plain-file/usage.db' } }),
      join(dir, 'tapgate.yaml'),
    );
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(
      err.message,
      /usage\.path: cannot use \S+plain-file\/usage\.db as the usage database: its folder cannot be created/,
    );
  });

  it('creates a missing folder; enabled: false writes nothing', async () => {
    const dir = tmp.dir();
    const on = await boot(
      gatewayConfig({ upstreams: [UPSTREAM], usage: { path: 'a/b/usage.db' } }),
      join(dir, 'on.yaml'),
    );
    assert.ok(on instanceof Gateway, String(on));
    await on.close(0);
    assert.ok(existsSync(join(dir, 'a', 'b', 'usage.db')));
    const off = await boot(
      gatewayConfig({ upstreams: [UPSTREAM], usage: { enabled: false, path: 'off/usage.db' } }),
      join(dir, 'off.yaml'),
    );
    assert.ok(off instanceof Gateway, String(off));
    await off.close(0);
    assert.ok(!existsSync(join(dir, 'off')));
  });

  it('plugins read the records through PluginContext.usage (undefined when off)', async () => {
    const file = tmp.file();
    const seen: PluginContext[] = [];
    class Probe {
      static readonly meta = { name: 'usage-probe' };
      apply(context: PluginContext): void {
        seen.push(context);
        // A route that authenticates itself, like the dashboard's: not API use, not recorded.
        const own = { kind: 'probe.page', proxy: false, auth: 'none' } as const;
        context.hooks.matchRoute.tap('usage-probe', (ctx) => (ctx.pathname === '/probe' ? own : undefined));
        context.hooks.request.tap('usage-probe', (ctx) =>
          ctx.route === own ? { status: 200, body: 'page' } : undefined,
        );
      }
    }
    const registry = { ...BUILTINS, plugins: { ...BUILTINS.plugins, 'usage-probe': Probe as never } };
    const up = await h.scripted('A');
    const yaml = gatewayConfig({
      upstreams: [{ ...UPSTREAM, baseUrl: `${up.url}/v1` }],
      usage: { path: file, flushInterval: '20ms' },
      plugins: ['responses-routes', 'usage-probe'],
    });
    const gw = await boot(yaml, join(tmp.dir(), 'probe.yaml'), registry);
    assert.ok(gw instanceof Gateway, String(gw));
    h.track({ close: () => gw.close(0) });
    await gw.listen();
    assert.equal(await (await fetch(`${gw.url}/probe`)).text(), 'page');
    for (const model of ['m1', 'm1', 'm2']) {
      const r = await fetch(`${gw.url}/v1/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, input: 'hi', stream: true }),
      });
      await r.text();
    }
    await until(() => countRecords(file) === 3, 'three records', 5000);
    const usage = seen[0]!.usage!;
    assert.deepEqual(await usage.query({ since: Date.now() - 60_000, by: ['model'] }), [
      { model: 'm1', requests: 2, errors: 0, input: 20, cachedInput: 0, output: 4, reasoning: 0, total: 24 },
      { model: 'm2', requests: 1, errors: 0, input: 10, cachedInput: 0, output: 2, reasoning: 0, total: 12 },
    ]);
    await gw.close(0);
    assert.equal(countRecords(file), 3, 'the page is not recorded');

    const off = await boot(
      gatewayConfig({
        upstreams: [UPSTREAM],
        usage: { enabled: false },
        plugins: ['responses-routes', 'usage-probe'],
      }),
      join(tmp.dir(), 'probe-off.yaml'),
      registry,
    );
    assert.ok(off instanceof Gateway);
    await off.close(0);
    assert.equal(seen[1]!.usage, undefined);
  });
});
