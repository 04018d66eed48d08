/**
 * An upstream's quota as its provider reports it: usage windows (a plan's 5-hour or weekly limit,
 * say), each with how much is used and when it resets. Neutral: an upstream type's plugin reads its
 * provider's headers and reports them (PoolStateStore.setQuota); the pool state keeps the latest per
 * upstream, the `most-headroom` policy and the dashboard read it.
 */
import { detached } from './state-key.js';

export interface QuotaWindow {
  /** Stable within the upstream type, e.g. `primary`. */
  id: string;
  /** What a person reads, e.g. `5h`, `weekly`. */
  label: string;
  /** Whole percent used (rounded when stored); 100 or more means exhausted. */
  usedPercent: number;
  /** The window's length, when reported. */
  windowMinutes: number | null;
  /** When the window resets (ms epoch), when reported. */
  resetsAt: number | null;
}

export interface UpstreamQuota {
  windows: QuotaWindow[];
  /** When the upstream reported it (ms epoch). */
  observedAt: number;
}

/** Windows kept per upstream, and the length of an id or label: whatever a plugin hands over. */
const MAX_WINDOWS = 8;
const MAX_LABEL = 32;
/** A reset that moved less than this is the same reset (a `reset-after-seconds` counts down as it is read). */
const RESET_SLACK_MS = 60_000;

/**
 * The quota as a store keeps it: bounded, percents rounded to whole ones (what every instance
 * shares), nonsense dropped. Undefined when no window is left.
 */
export function normaliseQuota(quota: UpstreamQuota): UpstreamQuota | undefined {
  // It may come from another process (the pool channel, Redis): checked for shape as well.
  if (typeof quota !== 'object' || quota === null || !Array.isArray(quota.windows)) return undefined;
  const windows: QuotaWindow[] = [];
  for (const w of quota.windows as unknown[] as Partial<QuotaWindow>[]) {
    if (windows.length >= MAX_WINDOWS) break;
    if (typeof w !== 'object' || w === null) continue;
    if (typeof w.id !== 'string' || typeof w.usedPercent !== 'number' || !Number.isFinite(w.usedPercent))
      continue;
    windows.push({
      id: label(w.id),
      label: label(typeof w.label === 'string' ? w.label : w.id),
      usedPercent: Math.min(1000, Math.max(0, Math.round(w.usedPercent))),
      windowMinutes: positive(w.windowMinutes),
      resetsAt: positive(w.resetsAt),
    });
  }
  if (windows.length === 0 || typeof quota.observedAt !== 'number' || !Number.isFinite(quota.observedAt))
    return undefined;
  return { windows, observedAt: quota.observedAt };
}

/** Whether `next` says something `prev` did not: a window, a whole percent, a length or a new reset. */
export function quotaChanged(prev: UpstreamQuota | undefined, next: UpstreamQuota): boolean {
  if (prev === undefined || prev.windows.length !== next.windows.length) return true;
  for (let i = 0; i < next.windows.length; i++) {
    const a = prev.windows[i]!;
    const b = next.windows[i]!;
    if (a.id !== b.id || a.usedPercent !== b.usedPercent || a.windowMinutes !== b.windowMinutes) return true;
    if ((a.resetsAt === null) !== (b.resetsAt === null)) return true;
    if (a.resetsAt !== null && Math.abs(a.resetsAt - b.resetsAt!) >= RESET_SLACK_MS) return true;
  }
  return false;
}

/**
 * How used the upstream is, by its most-used window: a window past its reset counts as empty, and
 * an upstream that reported nothing as unused (it gets tried, and reports).
 */
export function quotaUsed(quota: UpstreamQuota | undefined, now: number): number {
  if (quota === undefined) return 0;
  let used = 0;
  for (const w of quota.windows) {
    if (w.resetsAt !== null && w.resetsAt <= now) continue;
    if (w.usedPercent > used) used = w.usedPercent;
  }
  return used;
}

/** Cut short and copied (a slice would keep a long original alive). */
function label(text: string): string {
  return detached(text.slice(0, MAX_LABEL));
}

function positive(n: number | null | undefined): number | null {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : null;
}
