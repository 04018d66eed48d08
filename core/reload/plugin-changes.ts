/**
 * What a reload may change in the plugins: their options, for a plugin with reload(). The set of
 * plugins (an upstream type's provider included) stays until a restart.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, formatIssue, type ConfigIssue, type ConfigSource } from '../config/config.js';
import { PluginError } from '../loader/plugin-errors.js';
import type { LoadedPlugin, ResolvedPlugin } from '../loader/plugins.js';
import { RESTART_MESSAGE } from './restart-keys.js';

/** Why the new plugin list cannot apply to the running plugins (none: it can). */
export function pluginIssues(
  running: readonly LoadedPlugin[],
  next: readonly ResolvedPlugin[],
  source: ConfigSource,
): ConfigIssue[] {
  const before = new Set(running.map((p) => p.name));
  const after = new Set(next.map((p) => p.name));
  const added = [...after].filter((n) => !before.has(n));
  const removed = [...before].filter((n) => !after.has(n));
  if (added.length > 0 || removed.length > 0) {
    const what = [
      added.length > 0 ? `added ${added.join(', ')}` : '',
      removed.length > 0 ? `removed ${removed.join(', ')}` : '',
    ].filter((w) => w !== '');
    return [
      {
        path: ['plugins'],
        ...source.locate(['plugins']),
        message: `the set of plugins changed (${what.join('; ')}; an upstream type enables its plugin): ${RESTART_MESSAGE}`,
      } as ConfigIssue,
    ];
  }
  const issues: ConfigIssue[] = [];
  for (const r of changedPlugins(running, next)) {
    const instance = running.find((p) => p.name === r.name)!.instance;
    const why =
      instance.reload === undefined ? 'cannot reload its options' : instance.cannotReload?.(r.options);
    if (why === undefined) continue;
    const path = r.index === undefined ? ['plugins'] : ['plugins', r.index, 'options'];
    issues.push({
      path,
      ...source.locate(path),
      message: `plugin ${r.name} ${why}; restart to apply (reload refused, nothing changed)`,
    } as ConfigIssue);
  }
  return issues;
}

/** The plugins whose validated options differ from the running ones'. */
export function changedPlugins(
  running: readonly LoadedPlugin[],
  next: readonly ResolvedPlugin[],
): ResolvedPlugin[] {
  return next.filter((r) => {
    const old = running.find((p) => p.name === r.name);
    return old !== undefined && !isDeepStrictEqual(old.options, r.options);
  });
}

/** A refused reload's problems, one line each, as boot reports them. */
export function reloadErrors(err: unknown): string[] {
  if (err instanceof ConfigError) return err.issues.map((i) => formatIssue(err.file, i));
  if (err instanceof PluginError) return [`${err.name}: ${err.message}`];
  return [err instanceof Error ? err.message : String(err)];
}
