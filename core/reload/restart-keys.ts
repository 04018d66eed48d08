/**
 * What a config reload cannot apply to a running gateway: the listening socket, the number of
 * processes, the state and usage stores. A change to any of them refuses the whole reload, naming
 * the key (its deepest changed path) and its line in the new file.
 */
import { isDeepStrictEqual } from 'node:util';
import type { ConfigIssue, ConfigSource } from '../config/config.js';
import type { GatewayConfig } from '../config/config-schema.js';

type Path = (string | number)[];

/** Keep it short: everything else reloads. */
export const RESTART_KEYS: readonly Path[] = [
  ['server', 'host'],
  ['server', 'port'],
  ['server', 'workers'],
  ['state'],
  ['usage'],
  // The metrics listener is bound once, and the token guards it.
  ['metrics'],
  // The log destination (pretty or JSON) is made once, with the logger.
  ['log', 'format'],
];

export const RESTART_MESSAGE = 'changing it needs a restart; reload refused, nothing changed';

export function restartIssues(
  prev: Readonly<GatewayConfig>,
  next: Readonly<GatewayConfig>,
  source: ConfigSource,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const key of RESTART_KEYS) {
    for (const path of changedPaths(valueAt(prev, key), valueAt(next, key), key)) {
      issues.push({ path, ...source.locate(path), message: RESTART_MESSAGE } as ConfigIssue);
    }
  }
  return issues;
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path) v = (v as Record<string | number, unknown> | undefined)?.[p];
  return v;
}

/** The deepest paths where `a` and `b` differ (a whole value when one side is not an object). */
export function changedPaths(a: unknown, b: unknown, at: Path): Path[] {
  if (isDeepStrictEqual(a, b)) return [];
  const objects = isPlainObject(a) && isPlainObject(b);
  if (!objects) return [at];
  const out: Path[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
    out.push(...changedPaths(a[k], b[k], [...at, k]));
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
