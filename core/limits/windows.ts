/**
 * The fixed UTC windows per-key limits count in (minute, day, month): a count made in a window
 * stays in it, and the window's end is when it resets, so a limit trips at exactly its number and
 * `x-ratelimit-reset-*` is a real instant. Every process computes the same window from the same
 * clock, which names the shared counter in Redis.
 */

export type WindowKind = 'minute' | 'day' | 'month';

/** One counter of one key in one window: what a store counts in and what admission checks against. */
export interface CounterWindow {
  /** Names the counter: its kind and window, e.g. `rm:29000000` (requests, that minute). */
  readonly id: string;
  /** Epoch ms at which the window ends (the counter resets). */
  readonly end: number;
  readonly limit: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The window of `kind` holding `now`: its start index (or `yyyy-mm`) and its end. */
export function windowAt(kind: WindowKind, now: number): { key: string; end: number } {
  if (kind === 'minute') {
    const i = Math.floor(now / MINUTE);
    return { key: String(i), end: (i + 1) * MINUTE };
  }
  if (kind === 'day') {
    const i = Math.floor(now / DAY);
    return { key: String(i), end: (i + 1) * DAY };
  }
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { key: `${y}-${m + 1}`, end: Date.UTC(y, m + 1, 1) };
}

/**
 * A duration as OpenAI writes `x-ratelimit-reset-*` (Go's format, to the millisecond): `20ms`,
 * `1s`, `12.345s`, `6m0s`, `1h2m3s`.
 */
export function resetText(ms: number): string {
  ms = Math.max(0, Math.ceil(ms));
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const rest = ms % 60_000;
  const s = rest % 1000 === 0 ? String(rest / 1000) : (rest / 1000).toFixed(3).replace(/0+$/, '');
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
