/**
 * The Codex backend's usage-window headers, sent on successes too: `x-codex-{primary,secondary}-`
 * `used-percent`, `-window-minutes`, `-reset-after-seconds` and `-reset-at` (unix seconds). Primary
 * is the 5-hour window, secondary the weekly one. A window at 100 % means the whole account is out
 * until it resets; below that, the windows are the account's quota (reported to the pool state).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { QuotaWindow, UpstreamQuota } from '../../core/index.js';

const WINDOWS = ['primary', 'secondary'];
/** What each window is called when its length is not sent. */
const DEFAULT_LABELS: Record<string, string> = { primary: '5h', secondary: 'weekly' };
/** A plain decimal number: `Number()` would take `''`, `0x10` and `1e3` too. */
const DECIMAL = /^\s*\d{1,12}(?:\.\d{1,6})?\s*$/;
/** A reset further than this (a year) is nonsense, and so ignored. */
const MAX_RESET_MS = 366 * 24 * 3600_000;

/**
 * ms until a full window resets (the longer one if both are full), or undefined when none is full.
 * A malformed percent (`1e3`, `Infinity`) is no full window.
 */
export function exhaustedWindowMs(headers: IncomingHttpHeaders): number | undefined {
  let wait: number | undefined;
  for (const w of WINDOWS) {
    const used = decimal(headers[`x-codex-${w}-used-percent`]);
    if (used === undefined || used < 100) continue;
    const after = decimal(headers[`x-codex-${w}-reset-after-seconds`]);
    const ms = after !== undefined && after > 0 ? after * 1000 : 60_000;
    wait = wait === undefined ? ms : Math.max(wait, ms);
  }
  return wait;
}

/** The windows the answer reports, as a quota; undefined when it reports none (or only malformed ones). */
export function codexQuota(headers: IncomingHttpHeaders, now: number): UpstreamQuota | undefined {
  let windows: QuotaWindow[] | undefined;
  for (const id of WINDOWS) {
    const used = decimal(headers[`x-codex-${id}-used-percent`]);
    if (used === undefined) continue;
    const minutes = decimal(headers[`x-codex-${id}-window-minutes`]);
    const windowMinutes = minutes !== undefined && minutes > 0 ? Math.round(minutes) : null;
    (windows ??= []).push({
      id,
      label: windowMinutes === null ? DEFAULT_LABELS[id]! : spanLabel(windowMinutes),
      usedPercent: used,
      windowMinutes,
      resetsAt: resetsAt(headers, id, now),
    });
  }
  return windows === undefined ? undefined : { windows, observedAt: now };
}

function resetsAt(headers: IncomingHttpHeaders, id: string, now: number): number | null {
  const after = decimal(headers[`x-codex-${id}-reset-after-seconds`]);
  if (after !== undefined && after * 1000 <= MAX_RESET_MS) return now + Math.round(after * 1000);
  const at = decimal(headers[`x-codex-${id}-reset-at`]);
  if (at !== undefined && at > 0) {
    const ms = Math.round(at * 1000);
    if (ms - now <= MAX_RESET_MS) return ms;
  }
  return null;
}

function decimal(value: string | string[] | undefined): number | undefined {
  return typeof value === 'string' && DECIMAL.test(value) ? Number(value) : undefined;
}

/** 300 → `5h`, 10080 → `weekly`, 1440 → `1d`, 90 → `90m`. */
function spanLabel(minutes: number): string {
  if (minutes === 10_080) return 'weekly';
  if (minutes % 1440 === 0) return `${minutes / 1440}d`;
  if (minutes % 60 === 0) return `${minutes / 60}h`;
  return `${minutes}m`;
}
