/**
 * The plugin loader: resolves each entry of `plugins:` (a built-in name or a module path),
 * validates options and dependencies at boot with named errors, orders plugins so dependencies
 * come first, and constructs each in its own child container holding its validated options.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatPath, type ConfigSource } from '../config/config.js';
import type { PluginEntry } from '../config/config-schema.js';
import { TOKENS, type DependencyContainer } from './di.js';
import { isPluginClass, type PluginClass, type TapgatePlugin } from '../kernel/plugin-api.js';
import {
  DuplicatePluginError,
  PluginDependencyError,
  PluginLoadError,
  PluginNotFoundError,
  PluginOptionsError,
} from './plugin-errors.js';

/**
 * The plugins a composition root ships (tapgate's own are in app/builtin-plugins.ts): enabled by name,
 * and enabled automatically for the upstream types they provide. The kernel knows none of them.
 */
export interface PluginRegistry {
  readonly plugins: Readonly<Record<string, PluginClass>>;
  /** Upstream type → the name of the plugin that provides it. */
  readonly upstreamTypeProviders: Readonly<Record<string, string>>;
}

export const EMPTY_REGISTRY: PluginRegistry = { plugins: {}, upstreamTypeProviders: {} };

export interface LoadedPlugin {
  readonly name: string;
  readonly cls: PluginClass;
  readonly options: unknown;
  readonly container: DependencyContainer;
  readonly instance: TapgatePlugin;
  /** `file:line:col` of its entry in config.yaml; undefined when enabled for an upstream type. */
  readonly where: string | undefined;
}

interface Resolved {
  cls: PluginClass;
  options: unknown;
  /** Index in `plugins:`, or undefined when enabled automatically for an upstream type. */
  index: number | undefined;
  where: string | undefined;
}

/** A module path, as opposed to a built-in name. */
export function isModulePath(spec: string): boolean {
  return spec.startsWith('.') || isAbsolute(spec) || /\.(c|m)?(j|t)s$/.test(spec);
}

export async function loadPlugins(
  entries: readonly PluginEntry[],
  source: ConfigSource,
  configDir: string,
  upstreamTypes: readonly string[],
  parent: DependencyContainer,
  registry: PluginRegistry = EMPTY_REGISTRY,
): Promise<LoadedPlugin[]> {
  const resolved: Resolved[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const spec = typeof entry === 'string' ? entry : entry.name;
    const where = locate(source, ['plugins', i]);
    const cls = await resolveClass(spec, configDir, where, registry);
    resolved.push({ cls, options: typeof entry === 'string' ? undefined : entry.options, index: i, where });
  }
  // An upstream type's provider is enabled automatically when an upstream uses the type.
  for (const type of new Set(upstreamTypes)) {
    const provider = registry.upstreamTypeProviders[type];
    if (provider === undefined || resolved.some((r) => r.cls.meta.name === provider)) continue;
    resolved.push({
      cls: registry.plugins[provider]!,
      options: undefined,
      index: undefined,
      where: undefined,
    });
  }

  const byName = new Map<string, Resolved>();
  for (const r of resolved) {
    const name = r.cls.meta.name;
    if (byName.has(name)) throw new DuplicatePluginError(`plugin "${name}" is enabled twice`, r.where);
    byName.set(name, r);
  }
  for (const r of resolved) {
    for (const dep of r.cls.meta.dependsOn ?? []) {
      if (!byName.has(dep)) {
        throw new PluginDependencyError(
          `plugin "${r.cls.meta.name}" depends on "${dep}", which is not enabled: add it to plugins in config.yaml`,
          r.where,
        );
      }
    }
  }

  const loaded: LoadedPlugin[] = [];
  for (const r of orderByDependencies(resolved, byName)) {
    const options = validateOptions(r, source);
    const child = parent.createChildContainer();
    child.register(TOKENS.PluginOptions, { useValue: options });
    loaded.push({
      name: r.cls.meta.name,
      cls: r.cls,
      options,
      container: child,
      instance: construct(r.cls, child, options, r.where),
      where: r.where,
    });
  }
  return loaded;
}

function locate(source: ConfigSource, path: (string | number)[]): string | undefined {
  const pos = source.locate(path);
  return pos.line === undefined ? undefined : `${source.file}:${pos.line}:${pos.column ?? 1}`;
}

async function resolveClass(
  spec: string,
  configDir: string,
  where: string | undefined,
  registry: PluginRegistry,
): Promise<PluginClass> {
  if (!isModulePath(spec)) {
    const builtin = registry.plugins[spec];
    if (builtin === undefined) {
      const names = Object.keys(registry.plugins);
      throw new PluginNotFoundError(
        `unknown plugin "${spec}". Built-in plugins: ${names.length > 0 ? names.join(', ') : '(none)'}. A plugin module is named by a path starting with ./ or /`,
        where,
      );
    }
    return builtin;
  }
  const file = resolve(configDir, spec);
  if (!existsSync(file)) throw new PluginLoadError(`plugin module ${file} does not exist`, where);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const hint = esmHint(file, err);
    throw new PluginLoadError(
      `plugin module ${file} failed to load: ${(err as Error).message}${hint}`,
      where,
      { cause: err },
    );
  }
  const candidates = [mod.default, ...Object.values(mod)];
  const nested = (mod.default as Record<string, unknown> | undefined)?.default; // CJS default export
  const cls = [...candidates, nested].find(isPluginClass);
  if (cls === undefined) {
    throw new PluginLoadError(
      `plugin module ${file} exports no plugin class (a class with static meta = { name } and an apply() method)`,
      where,
    );
  }
  return cls;
}

/**
 * A `.js` file with `import`/`export` outside a `"type": "module"` package is loaded as CommonJS by
 * the TypeScript loader, which fails with an error that does not say why (a require() cycle).
 */
function esmHint(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const message = (err as Error).message;
  const esmAsCjs =
    code === 'ERR_REQUIRE_CYCLE_MODULE' ||
    code === 'ERR_REQUIRE_ESM' ||
    /import statement outside a module|Unexpected token 'export'/.test(message);
  if (!esmAsCjs || !file.endsWith('.js')) return '';
  return ' (it uses import/export outside a "type": "module" package: rename it to .mjs, or put a package.json with {"type": "module"} beside it)';
}

function validateOptions(r: Resolved, source: ConfigSource): unknown {
  const schema = r.cls.meta.options;
  const name = r.cls.meta.name;
  if (schema === undefined) {
    const given = r.options !== undefined && Object.keys(r.options as object).length > 0;
    if (given)
      throw new PluginOptionsError(
        `plugin "${name}" takes no options`,
        locate(source, ['plugins', r.index!, 'options']),
      );
    return {};
  }
  const parsed = schema.safeParse(r.options ?? {});
  if (parsed.success) return parsed.data;
  const prefix: (string | number)[] = r.index === undefined ? [] : ['plugins', r.index, 'options'];
  const issues = source.issuesFrom(parsed.error, prefix);
  const lines = issues.map((i) => {
    const at = i.line === undefined ? '' : `${source.file}:${i.line}:${i.column ?? 1} `;
    return `  - ${at}${i.path.length > 0 ? formatPath(i.path) : 'options'}: ${i.message}`;
  });
  throw new PluginOptionsError(`invalid options for plugin "${name}":\n${lines.join('\n')}`);
}

/** Dependencies first; otherwise the order of config.yaml. */
function orderByDependencies(list: Resolved[], byName: Map<string, Resolved>): Resolved[] {
  const out: Resolved[] = [];
  const state = new Map<Resolved, 'visiting' | 'done'>();
  const visit = (r: Resolved, chain: string[]) => {
    const s = state.get(r);
    if (s === 'done') return;
    if (s === 'visiting')
      throw new PluginDependencyError(
        `plugin dependency cycle: ${[...chain, r.cls.meta.name].join(' → ')}`,
        r.where,
      );
    state.set(r, 'visiting');
    for (const dep of r.cls.meta.dependsOn ?? []) visit(byName.get(dep)!, [...chain, r.cls.meta.name]);
    state.set(r, 'done');
    out.push(r);
  };
  for (const r of list) visit(r, []);
  return out;
}

/** Decorated plugins are resolved by tsyringe; plain JS plugins receive their options. */
function construct(
  cls: PluginClass,
  child: DependencyContainer,
  options: unknown,
  where: string | undefined,
): TapgatePlugin {
  try {
    // Nothing to inject into a zero-arity constructor, but `constructor(options = {})` or `(...args)`
    // still reads its options (tsyringe would call it with no arguments).
    if (cls.length === 0) return new cls(options);
    try {
      return child.resolve(cls);
    } catch (err) {
      if (!/TypeInfo not known/.test((err as Error).message)) throw err;
    }
    return new cls(options);
  } catch (err) {
    // A constructor that throws is a named boot error, like a failed apply(), never a raw stack.
    const reason = err instanceof Error ? err.message : String(err);
    throw new PluginLoadError(`plugin "${cls.meta.name}" could not be constructed: ${reason}`, where, {
      cause: err,
    });
  }
}
