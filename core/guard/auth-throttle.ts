/**
 * Failed authentication, per source address. An address that fails `maxFailures` times within a
 * window is refused (before any key is checked, so the right guess does not get through either)
 * until that window ends. Its log lines are aggregated: only its first failure in a window is logged
 * in full, the rest are counted and reported in one summary when the window ends.
 *
 * Addresses are kept whole (an IPv6 client may rotate within its /64; see the README). The table is
 * bounded: beyond `maxAddresses` the oldest window is dropped, after its summary. Every window has the
 * same length, so insertion order (a Map's) is also the order windows end in: a sweep stops at the
 * first window still open, and costs only what it removes.
 */

export interface FailureThrottleOptions {
  /** Failures an address may make per window before it is refused; 0 refuses nobody (logs still aggregate). */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at once. */
  maxAddresses?: number;
}

/** One address's window, reported when it ends if it held more than the one failure already logged. */
export interface FailureSummary {
  address: string;
  /** Every refused attempt in the window: wrong or missing credentials, and `blocked` ones. */
  failures: number;
  windowMs: number;
  /** Attempts refused without a check, while the address was over the limit. */
  blocked: number;
}

interface Window {
  start: number;
  /** Credentials checked and wrong. */
  denied: number;
  blocked: number;
}

export const DEFAULT_MAX_ADDRESSES = 10_000;

export class FailureThrottle {
  private readonly windows = new Map<string, Window>();
  private maxFailures: number;
  private windowMs: number;
  private readonly maxAddresses: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    opts: FailureThrottleOptions,
    private readonly report: (summary: FailureSummary) => void,
  ) {
    this.maxFailures = opts.maxFailures;
    this.windowMs = opts.windowMs;
    this.maxAddresses = Math.max(1, opts.maxAddresses ?? DEFAULT_MAX_ADDRESSES);
  }

  /** A config reload's new bounds (`auth.bruteForce`); counts already kept stay. */
  configure(opts: Pick<FailureThrottleOptions, 'maxFailures' | 'windowMs'>): void {
    this.maxFailures = opts.maxFailures;
    this.windowMs = opts.windowMs;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.windows.size;
  }

  /**
   * Whole seconds `address` must wait before it may try again, or 0 when it may. A refusal counts
   * toward the window's summary.
   */
  refusal(address: string, now = Date.now()): number {
    if (this.maxFailures === 0) return 0;
    const w = this.windows.get(address);
    if (w === undefined || w.denied < this.maxFailures) return 0;
    const left = w.start + this.windowMs - now;
    if (left <= 0) return 0;
    w.blocked++;
    return Math.ceil(left / 1000);
  }

  /** Records a failed authentication. True when it is the address's first in its window: log it in full. */
  fail(address: string, now = Date.now()): boolean {
    const w = this.windows.get(address);
    if (w !== undefined && w.start + this.windowMs > now) {
      w.denied++;
      return false;
    }
    if (w !== undefined) this.end(address, w);
    else if (this.windows.size >= this.maxAddresses) this.evict(now);
    this.windows.set(address, { start: now, denied: 1, blocked: 0 });
    return true;
  }

  /** Ends (and reports) every window that is over. */
  sweep(now = Date.now()): void {
    for (const [address, w] of this.windows) {
      if (w.start + this.windowMs > now) return;
      this.end(address, w);
    }
  }

  /** Starts the one sweep timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sweep(), Math.min(1000, this.windowMs));
    this.timer.unref();
  }

  /** Stops the timer and reports every open window, so no count is lost at shutdown. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const [address, w] of this.windows) this.end(address, w);
  }

  /** Makes room for one address: the ended windows go, else the oldest open one. */
  private evict(now: number): void {
    this.sweep(now);
    if (this.windows.size < this.maxAddresses) return;
    const [address, w] = this.windows.entries().next().value!;
    this.end(address, w);
  }

  private end(address: string, w: Window): void {
    this.windows.delete(address);
    const failures = w.denied + w.blocked;
    if (failures > 1) this.report({ address, failures, windowMs: this.windowMs, blocked: w.blocked });
  }
}
