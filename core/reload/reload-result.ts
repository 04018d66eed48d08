/** What `Gateway.reload()` reports: applied or refused, and what changed, by name (never a key's value). */
import { isDeepStrictEqual } from 'node:util';

export interface NamedChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface ReloadResult {
  /** `refused`: nothing changed; the old config keeps serving. */
  status: 'applied' | 'refused';
  /** Each problem as boot reports it (`file:line:col key.path: message`); empty when applied. */
  errors: string[];
  upstreams: NamedChanges;
  /** Client keys (`auth.keys`), by name; `changed`: its value or its limits. */
  keys: NamedChanges;
  /** Plugins whose options changed, and whose reload() ran. */
  plugins: string[];
}

export function noChanges(): NamedChanges {
  return { added: [], removed: [], changed: [] };
}

/** Compares two lists of named entries (`auth.keys`, upstream configs) by name. */
export function namedChanges<T extends { name: string }>(
  prev: readonly T[],
  next: readonly T[],
): NamedChanges {
  const before = new Map(prev.map((e) => [e.name, e]));
  const after = new Map(next.map((e) => [e.name, e]));
  const out = noChanges();
  for (const [name, e] of after) {
    const old = before.get(name);
    if (old === undefined) out.added.push(name);
    else if (!isDeepStrictEqual(old, e)) out.changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) out.removed.push(name);
  return out;
}

export function refused(errors: string[]): ReloadResult {
  return { status: 'refused', errors, upstreams: noChanges(), keys: noChanges(), plugins: [] };
}
