/** Process probes for the soak: a full GC, memory after it, and the open handles by type. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { snapshotHandles, type HandleCounts } from '../../test/helpers/handles.js';

/**
 * `global.gc` when node runs with --expose-gc; otherwise the flag is turned on now and a fresh
 * context hands out its `gc` (V8 installs it in contexts created after the flag is set).
 */
export function gcFunction(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing !== undefined) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export interface Memory {
  rss: number;
  heapUsed: number;
}

/** Memory after full collections: twice, as the first can leave what only a second frees. */
export function memoryAfterGc(gc: () => void): Memory {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}

export type Handles = HandleCounts;

/** What keeps the event loop alive, counted by type (TCPSocketWrap, TCPServerWrap, Timeout, …). */
export const handles = snapshotHandles;

/** What `after` has beyond `before`, by type; empty when nothing was left behind. */
export function extraHandles(before: Handles, after: Handles): Handles {
  const out: Handles = {};
  for (const [type, n] of Object.entries(after)) {
    const extra = n - (before[type] ?? 0);
    if (extra > 0) out[type] = extra;
  }
  return out;
}

export const total = (h: Handles): number => Object.values(h).reduce((a, b) => a + b, 0);
