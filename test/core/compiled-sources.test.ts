/**
 * Issue 17 (memory): the tapgate command runs its sources transpiled once into
 * node_modules/.cache/tapgate instead of through tsx's loader thread. The cache follows the sources
 * (an edit makes a new entry), import.meta.url still names the source file, and a plugin loaded by
 * path that imports 'tapgate' (.ts, .js, or an .mjs that Node imports without tsx's loader first)
 * gets the core the gateway runs, not a second copy.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compiledSources } from '../../app/compiled-cache.js';
import { killStrayClis, ROOT, runCli } from '../helpers/cli.js';

/** A plugin that says, in a response header, whether its `Stage` is the running core's. */
const samePlugin = (name: string, ts: boolean) => `import { Stage } from 'tapgate';

export default class SameCore {
  static meta = { name: '${name}' };
  apply(context${ts ? ': { Stage: unknown; hooks: any }' : ''}) {
    context.hooks.start.tap({ name: '${name}', stage: Stage.DEFAULT }, (ctx${ts ? ': any' : ''}) =>
      ctx.res.setHeader('x-${name}', String(context.Stage === Stage)),
    );
  }
}
`;

describe('the transpiled sources (node_modules/.cache/tapgate)', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-compiled-'));
  });
  afterEach(() => killStrayClis());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('one entry per content of the sources; import.meta.url names the source file', async () => {
    const root = join(dir, 'root');
    for (const sub of ['app', 'core', 'plugins']) mkdirSync(join(root, sub), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{ "name": "x", "version": "1.2.3", "type": "module" }\n');
    writeFileSync(join(root, 'tsconfig.json'), '{ "compilerOptions": { "target": "ES2022" } }\n');
    const source = join(root, 'core', 'where.ts');
    writeFileSync(source, 'export const where: string = import.meta.url;\n');
    const first = await compiledSources(root);
    assert.ok(first !== undefined && first.startsWith(join(root, 'node_modules', '.cache', 'tapgate')));
    const mod = (await import(pathToFileURL(join(first, 'core', 'where.js')).href)) as { where: string };
    assert.equal(mod.where, pathToFileURL(source).href);
    assert.equal(await compiledSources(root), first, 'unchanged sources: the same entry');
    writeFileSync(source, 'export const where: string = "edited";\n');
    const second = await compiledSources(root);
    assert.ok(second !== undefined && second !== first, 'an edit: a new entry');
    assert.ok(existsSync(join(second, 'core', 'where.js')));
  });

  it('a cache that cannot be written: undefined (the command then runs the sources through tsx)', async () => {
    const root = join(dir, 'read-only');
    for (const sub of ['app', 'core', 'plugins']) mkdirSync(join(root, sub), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{ "name": "x", "version": "1.0.0", "type": "module" }\n');
    writeFileSync(join(root, 'tsconfig.json'), '{}\n');
    writeFileSync(join(root, 'core', 'x.ts'), 'export const x = 1;\n');
    // A file where the cache's folder would go: nothing can be created under it.
    writeFileSync(join(root, 'node_modules'), '');
    assert.equal(await compiledSources(root), undefined);
  });

  it('a plugin by path that imports tapgate gets the core the command runs', async () => {
    const linked = join(dir, 'linked');
    mkdirSync(join(linked, 'node_modules'), { recursive: true });
    writeFileSync(join(linked, 'package.json'), '{ "name": "my-plugins", "type": "module" }\n');
    symlinkSync(ROOT, join(linked, 'node_modules', 'tapgate'), 'dir');
    writeFileSync(join(linked, 'same-ts.ts'), samePlugin('same-ts', true));
    writeFileSync(join(linked, 'same-js.js'), samePlugin('same-js', false));
    // Imported by Node as it is, then, on the .ts that 'tapgate' resolves to, through the loaders.
    writeFileSync(join(linked, 'same-mjs.mjs'), samePlugin('same-mjs', false));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(
      file,
      `server:\n  host: 127.0.0.1\n  port: 0\nupstreams: []\nplugins:\n  - ./linked/same-mjs.mjs\n  - ./linked/same-js.js\n  - ./linked/same-ts.ts\n`,
    );
    const cli = runCli(['--config', file], { cwd: dir });
    const listening = await cli.logLine('tapgate listening');
    const res = await fetch(`http://127.0.0.1:${String(listening.port)}/nowhere`);
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-same-mjs'), 'true');
    assert.equal(res.headers.get('x-same-js'), 'true');
    assert.equal(res.headers.get('x-same-ts'), 'true');
    cli.child.kill('SIGTERM');
    assert.deepEqual(await cli.closed, { code: 0, signal: null });
  });
});
