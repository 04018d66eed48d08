/**
 * The Codex backend's usage-window headers, sent on successes too: `x-codex-{primary,secondary}-used-percent`
 * and `-reset-after-seconds`. A window at 100 % means the whole account is out until it resets.
 */
import type { IncomingHttpHeaders } from 'node:http';

const WINDOWS = ['primary', 'secondary'];

/** ms until a full window resets (the longer one if both are full), or undefined when none is full. */
export function exhaustedWindowMs(headers: IncomingHttpHeaders): number | undefined {
  let wait: number | undefined;
  for (const w of WINDOWS) {
    const used = Number(headers[`x-codex-${w}-used-percent`]);
    if (!(used >= 100)) continue;
    const after = Number(headers[`x-codex-${w}-reset-after-seconds`]);
    const ms = Number.isFinite(after) && after > 0 ? after * 1000 : 60_000;
    wait = wait === undefined ? ms : Math.max(wait, ms);
  }
  return wait;
}
