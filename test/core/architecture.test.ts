/**
 * The kernel boundary (issue 12), checked on the source: `core/` imports no plugin and nothing from
 * `app/`, has no import circle (type imports included), and every built-in plugin reaches the core
 * only through its public API, `core/index.ts`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CORE = join(ROOT, 'core');
const SPEC = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'node_modules' && name !== 'public') out.push(...sources(path));
    } else if (/\.(ts|js)$/.test(name)) out.push(path);
  }
  return out;
}

/** The files `file` imports by relative path, resolved (`.js` specifiers name `.ts` sources). */
function imports(file: string): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, 'utf8').matchAll(SPEC)) {
    const target = resolve(dirname(file), m[1]!);
    out.push(target.endsWith('.js') ? target.slice(0, -3) + '.ts' : target);
  }
  return out;
}

const rel = (p: string) => relative(ROOT, p);

describe('architecture: the kernel boundary', () => {
  it('core/ imports nothing from plugins/ or app/', () => {
    const outside = sources(CORE).flatMap((f) =>
      imports(f)
        .filter((t) => !t.startsWith(CORE + '/'))
        .map((t) => `${rel(f)} → ${rel(t)}`),
    );
    assert.deepEqual(outside, []);
  });

  it('core/ has no import circle, type imports included', () => {
    const graph = new Map(sources(CORE).map((f) => [f, imports(f).filter((t) => t.startsWith(CORE))]));
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const walk = (f: string, path: string[]) => {
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open') circles.push([...path.slice(path.indexOf(t)), t].map(rel).join(' → '));
        else if (!state.has(t)) walk(t, [...path, t]);
      }
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) walk(f, [f]);
    assert.deepEqual(circles, []);
  });

  it('built-in plugins import the core only through core/index.ts', () => {
    const index = join(CORE, 'index.ts');
    const deep = sources(join(ROOT, 'plugins')).flatMap((f) =>
      imports(f)
        .filter((t) => t.startsWith(CORE + '/') && t !== index)
        .map((t) => `${rel(f)} → ${rel(t)}`),
    );
    assert.deepEqual(deep, []);
  });

  it('the check sees imports: app/ does import the plugins it registers', () => {
    const registry = imports(join(ROOT, 'app/builtin-plugins.ts'));
    assert.ok(registry.some((t) => t.startsWith(join(ROOT, 'plugins') + '/')));
  });
});
