/**
 * Issue 12, "a plain plugin contract" and "writing a plugin from the README alone": plugins written
 * into a folder outside the repository (os.tmpdir()), as a new user would, load through the real
 * `tapgate` command and through createGateway. A plain `.js` file with import/export in a bare folder
 * (no `"type": "module"`), a `.ts` file with type-only imports from 'tapgate', and a plugin project
 * that links tapgate and imports `definePlugin` and `Stage` from it. Options are validated by
 * hand-written `safeParse` objects (zod does not resolve from there). Plus `meta.apiVersion`: a higher
 * one than the core's is a PluginLoadError with both numbers and the line; none at all is version 1.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../core/config/config.js';
import { PLUGIN_API_VERSION } from '../../core/kernel/plugin-api.js';
import { PluginLoadError, PluginOptionsError, type PluginError } from '../../core/loader/plugin-errors.js';
import { createGateway } from '../../app/gateway.js';
import { killStrayClis, ROOT, runCli } from '../helpers/cli.js';
import { CLIENT_KEY, LogCapture, startGateway, type TestGateway } from '../helpers/gateway.js';

/** A hand-written options schema: `{ value: string }`, defaulting to `fallback`; anything else is refused. */
const HAND_SCHEMA = `{
  safeParse(input) {
    const keys = Object.keys(input);
    const bad = keys.filter((k) => k !== 'value');
    if (bad.length > 0) return { success: false, error: { issues: [{ path: [], code: 'unrecognized_keys', keys: bad, message: 'unknown key' }] } };
    if (input.value !== undefined && typeof input.value !== 'string')
      return { success: false, error: { issues: [{ path: ['value'], message: 'must be a string' }] } };
    return { success: true, data: { value: input.value ?? 'fallback' } };
  },
}`;

// The README's JS example: import/export in a .js file, in a folder with no package.json at all.
const JS_PLUGIN = `const options = ${HAND_SCHEMA};

export default class OutsideJs {
  static meta = { name: 'outside-js', options };
  constructor(options) {
    this.value = options.value;
  }
  apply({ hooks, Stage }) {
    hooks.start.tap({ name: 'outside-js', stage: Stage.DEFAULT }, (ctx) => ctx.res.setHeader('x-outside-js', this.value));
  }
}
`;

// The README's TS example: types only from 'tapgate' (erased, so nothing has to resolve at run time).
const TS_PLUGIN = `import type { OptionsSchema, PluginContext, TapgatePlugin } from 'tapgate';

interface Options {
  value: string;
}
const options: OptionsSchema<Options> = ${HAND_SCHEMA.replace('safeParse(input)', 'safeParse(input: any)')};

export default class OutsideTs implements TapgatePlugin {
  static readonly meta = { name: 'outside-ts', options, apiVersion: 1 };
  private readonly value: string;
  constructor(opts: Options) {
    this.value = opts.value;
  }
  apply({ hooks, Stage }: PluginContext): void {
    hooks.start.tap({ name: 'outside-ts', stage: Stage.LATE }, (ctx) => ctx.res.setHeader('x-outside-ts', this.value));
  }
}
`;

// A plugin project that linked tapgate (npm link tapgate): runtime imports from the package.
const LINKED_PLUGIN = `import { writeFileSync } from 'node:fs';
import { definePlugin, Stage } from 'tapgate';

export default definePlugin<{ value: string }>({
  name: 'outside-linked',
  apiVersion: 1,
  options: ${HAND_SCHEMA.replace('safeParse(input)', 'safeParse(input: any)')},
  setup({ hooks }, { value }) {
    hooks.start.tap({ name: 'outside-linked', stage: Stage.EARLY }, (ctx) => ctx.res.setHeader('x-outside-linked', value));
    return () => writeFileSync(new URL('./closed', import.meta.url), value);
  },
});
`;

describe('plugins written outside the repository', () => {
  let dir: string;
  const running: TestGateway[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-outside-'));
    assert.ok(!dir.startsWith(ROOT), 'the plugins live outside the checkout');
    writeFileSync(join(dir, 'js-plugin.js'), JS_PLUGIN);
    writeFileSync(join(dir, 'ts-plugin.ts'), TS_PLUGIN);
    writeFileSync(
      join(dir, 'future.js'),
      `export default class Future {\n  static meta = { name: 'future', apiVersion: ${PLUGIN_API_VERSION + 1} };\n  apply() {}\n}\n`,
    );
    writeFileSync(
      join(dir, 'needs-tapgate.ts'),
      `import { Stage } from 'tapgate';\nexport default class X {\n  static meta = { name: 'x' };\n  apply(): void {\n    void Stage;\n  }\n}\n`,
    );
    writeFileSync(
      join(dir, 'needs-zod.js'),
      `import { z } from 'zod';\nexport default class Y {\n  static meta = { name: 'y', options: z.object({}) };\n  apply() {}\n}\n`,
    );
    const linked = join(dir, 'linked');
    mkdirSync(join(linked, 'node_modules'), { recursive: true });
    writeFileSync(join(linked, 'package.json'), '{ "name": "my-plugin", "type": "module" }\n');
    symlinkSync(ROOT, join(linked, 'node_modules', 'tapgate'), 'dir');
    writeFileSync(join(linked, 'index.ts'), LINKED_PLUGIN);
  });
  afterEach(async () => {
    killStrayClis();
    await Promise.all(running.splice(0).map((g) => g.close()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const config = (plugins: string) =>
    `server:\n  host: 127.0.0.1\n  port: 0\nupstreams: []\nplugins:\n${plugins}`;

  /** The gateway answers a path with no route locally (404): the plugins' `start` taps still ran. */
  async function headers(url: string): Promise<Headers> {
    const res = await fetch(`${url}/nowhere`);
    await res.arrayBuffer();
    assert.equal(res.status, 404);
    return res.headers;
  }

  async function bootFails(yaml: string): Promise<PluginError> {
    const file = join(dir, 'gateway.yaml');
    const loaded = parseConfig(yaml, file, { TAPGATE_TEST_KEY: CLIENT_KEY });
    try {
      const gw = await createGateway(loaded, { logDestination: new LogCapture() });
      await gw.close(0);
    } catch (err) {
      return err as PluginError;
    }
    assert.fail('expected the boot to fail');
  }

  it('the tapgate command loads a .js and a .ts plugin from a bare folder, options and all', async () => {
    const file = join(dir, 'cli.yaml');
    writeFileSync(
      file,
      config(
        `  - name: ${join(dir, 'js-plugin.js')}\n    options:\n      value: from-js\n  - ${join(dir, 'ts-plugin.ts')}\n`,
      ),
    );
    // Run from the temporary folder, as a user's own project would.
    const cli = runCli(['--config', file], { cwd: dir });
    const listening = await cli.logLine('tapgate listening');
    assert.deepEqual(listening.plugins, ['outside-js', 'outside-ts']);
    const h = await headers(`http://127.0.0.1:${String(listening.port)}`);
    assert.equal(h.get('x-outside-js'), 'from-js');
    assert.equal(h.get('x-outside-ts'), 'fallback', 'the schema filled in the default');
    cli.child.kill('SIGTERM');
    assert.deepEqual(await cli.closed, { code: 0, signal: null });
  });

  it('a plugin project that links tapgate imports definePlugin and Stage from it', async () => {
    const tg = await startGateway(
      config(`  - name: ./linked/index.ts\n    options:\n      value: linked\n`),
      {},
      join(dir, 'gateway.yaml'),
    );
    assert.equal((await headers(tg.url)).get('x-outside-linked'), 'linked');
    await tg.close();
    // setup()'s cleanup runs as the plugin's close().
    assert.equal(readFileSync(join(dir, 'linked', 'closed'), 'utf8'), 'linked');
  });

  it('a hand-written safeParse refuses bad options with the key path and line', async () => {
    const err = await bootFails(
      config(`  - name: ./js-plugin.js\n    options:\n      value: 3\n      colour: red\n`),
    );
    assert.ok(err instanceof PluginOptionsError, err.message);
    assert.match(err.message, /gateway\.yaml:9:7 plugins\[0\]\.options\.colour: unknown key/);
    const typed = await bootFails(config(`  - name: ./js-plugin.js\n    options:\n      value: 3\n`));
    assert.match(typed.message, /gateway\.yaml:8:14 plugins\[0\]\.options\.value: must be a string/);
  });

  it('meta.apiVersion higher than the core’s: PluginLoadError naming both and the line', async () => {
    const err = await bootFails(config(`  - ./future.js\n`));
    assert.ok(err instanceof PluginLoadError, err.message);
    assert.equal(err.where, `${join(dir, 'gateway.yaml')}:6:5`);
    assert.match(
      err.message,
      new RegExp(
        `:6:5 plugin "future" needs plugin API version ${PLUGIN_API_VERSION + 1}, but this tapgate provides version ${PLUGIN_API_VERSION}`,
      ),
    );
  });

  it('a plugin without meta.apiVersion loads as version 1', async () => {
    const tg = await startGateway(config(`  - ./js-plugin.js\n`), {}, join(dir, 'gateway.yaml'));
    running.push(tg);
    assert.equal((await headers(tg.url)).get('x-outside-js'), 'fallback');
  });

  it('a runtime import of tapgate or zod that cannot resolve fails with a hint', async () => {
    const tapgate = await bootFails(config(`  - ./needs-tapgate.ts\n`));
    assert.ok(tapgate instanceof PluginLoadError, tapgate.message);
    assert.match(tapgate.message, /failed to load: .*'tapgate'.*npm link tapgate\): import types only/s);
    const zod = await bootFails(config(`  - ./needs-zod.js\n`));
    assert.match(zod.message, /install it there, or use any object with a safeParse\(value\) method/);
  });
});
