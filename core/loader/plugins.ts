/**
 * The plugin loader: resolves each entry of `plugins:` (a built-in name or a module path),
 * validates options and dependencies at boot with named errors, orders plugins so dependencies
 * come first, checks the plugin API version each was written for, and constructs each as
 * `new Cls(options)` with its validated options.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatPath, type ConfigSource } from '../config/config.js';
import type { PluginEntry } from '../config/config-schema.js';
import {
  isPluginClass,
  PLUGIN_API_VERSION,
  type PluginClass,
  type TapgatePlugin,
} from '../kernel/plugin-api.js';
import {
  DuplicatePluginError,
  PluginDependencyError,
  PluginLoadError,
  PluginNotFoundError,
  PluginOptionsError,
} from './plugin-errors.js';
import { importPluginModule } from './plugin-import.js';

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
  readonly instance: TapgatePlugin;
  /** `file:line:col` of its entry in config.yaml; undefined when enabled for an upstream type. */
  readonly where: string | undefined;
  /** Its index in `plugins:`; undefined when enabled for an upstream type. */
  readonly index?: number | undefined;
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

/** A plugin resolved and its options validated, not constructed yet: what a reload compares. */
export type ResolvedPlugin = Omit<LoadedPlugin, 'instance'>;

export async function loadPlugins(
  entries: readonly PluginEntry[],
  source: ConfigSource,
  configDir: string,
  upstreamTypes: readonly string[],
  registry: PluginRegistry = EMPTY_REGISTRY,
): Promise<LoadedPlugin[]> {
  const resolved = await resolvePlugins(entries, source, configDir, upstreamTypes, registry);
  return resolved.map((r) => ({ ...r, instance: construct(r.cls, r.options, r.where) }));
}

/**
 * Every check of loadPlugins (names, API versions, dependencies, options) without constructing
 * anything: dependencies first, then the order of config.yaml.
 */
export async function resolvePlugins(
  entries: readonly PluginEntry[],
  source: ConfigSource,
  configDir: string,
  upstreamTypes: readonly string[],
  registry: PluginRegistry = EMPTY_REGISTRY,
): Promise<ResolvedPlugin[]> {
  const resolved: Resolved[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const spec = typeof entry === 'string' ? entry : entry.name;
    const where = locate(source, ['plugins', i]);
    const cls = await resolveClass(spec, configDir, where, registry);
    checkApiVersion(cls, where);
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

  return orderByDependencies(resolved, byName).map((r) => ({
    name: r.cls.meta.name,
    cls: r.cls,
    options: validateOptions(r, source),
    where: r.where,
    index: r.index,
  }));
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
    mod = (await importPluginModule(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const hint = loadHint(file, err);
    // CommonJS appends the require() chain, which only repeats the plugin's own path.
    const reason = (err as Error).message.replace(/\nRequire stack:[\s\S]*$/, '');
    throw new PluginLoadError(`plugin module ${file} failed to load: ${reason}${hint}`, where, {
      cause: err,
    });
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

/** Why a plugin module failed to load, when the error does not say it plainly ('' otherwise). */
function loadHint(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const message = (err as Error).message;
  // Resolved from the plugin's folder: tapgate's own dependencies are not visible from a folder elsewhere.
  const missing = /Cannot find (?:package|module) '([^'./][^']*)'/.exec(message)?.[1];
  if (missing === 'tapgate') {
    return ' (outside the tapgate checkout, "tapgate" resolves only where it is installed or linked (npm link tapgate): import types only (import type), and take Stage and the rest from the context apply() receives)';
  }
  if (missing === 'zod') {
    return " (zod resolves from the plugin's folder, not from tapgate's: install it there, or use any object with a safeParse(value) method as meta.options)";
  }
  if (missing !== undefined) return ` (packages resolve from the plugin's folder: install ${missing} there)`;
  const ts = /\.(c|m)?ts$/.test(file);
  // A .js (or .ts) file with import/export outside a "type": "module" package is CommonJS to Node;
  // without tsx's CommonJS loader it fails with an error that does not say why (a require() cycle).
  const esmAsCjs =
    code === 'ERR_REQUIRE_CYCLE_MODULE' ||
    code === 'ERR_REQUIRE_ESM' ||
    /import statement outside a module|Unexpected token 'export'/.test(message);
  if (esmAsCjs && (file.endsWith('.js') || file.endsWith('.ts'))) {
    const mjs = file.endsWith('.js') ? '.mjs' : '.mts';
    return ` (it uses import/export outside a "type": "module" package: rename it to ${mjs}, or put a package.json with {"type": "module"} beside it)`;
  }
  // The tapgate command imports an .mjs plugin without tsx's loader (app/plugin-loaders.js).
  if (file.endsWith('.mjs') && code === 'ERR_UNKNOWN_FILE_EXTENSION') {
    return ' (an .mjs plugin is imported by Node as it is: name it .js or .ts for the TypeScript it imports to load through tsx)';
  }
  if (ts && (code === 'ERR_UNKNOWN_FILE_EXTENSION' || err instanceof SyntaxError)) {
    return " (a TypeScript plugin needs tsx's loader: the tapgate command registers it; an embedding program runs node --import tsx)";
  }
  return '';
}

/**
 * A plugin written for a newer plugin API than this core provides would be misread: refuse it at
 * load, naming both versions. No `apiVersion` means 1, the first contract.
 */
function checkApiVersion(cls: PluginClass, where: string | undefined): void {
  const wanted = cls.meta.apiVersion ?? 1;
  if (Number.isInteger(wanted) && wanted >= 1 && wanted <= PLUGIN_API_VERSION) return;
  const name = cls.meta.name;
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new PluginLoadError(
      `plugin "${name}" has meta.apiVersion ${String(wanted)}: it must be a whole number from 1 to ${PLUGIN_API_VERSION}`,
      where,
    );
  }
  throw new PluginLoadError(
    `plugin "${name}" needs plugin API version ${wanted}, but this tapgate provides version ${PLUGIN_API_VERSION}: upgrade tapgate, or use a version of the plugin written for API ${PLUGIN_API_VERSION}`,
    where,
  );
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

/** Every plugin, in JS or TS, is constructed with its validated options, and nothing else. */
function construct(cls: PluginClass, options: unknown, where: string | undefined): TapgatePlugin {
  try {
    return new cls(options);
  } catch (err) {
    // A constructor that throws is a named boot error, like a failed apply(), never a raw stack.
    const reason = err instanceof Error ? err.message : String(err);
    throw new PluginLoadError(`plugin "${cls.meta.name}" could not be constructed: ${reason}`, where, {
      cause: err,
    });
  }
}
