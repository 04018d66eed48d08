/**
 * The counters of per-key limits (`auth.keys[].limits`): requests per window and tokens per window,
 * by key name. Admission checks and counts in one step (so two requests cannot both take the last
 * one); tokens are charged later, when a request's usage is known. This process's store is here;
 * core/state/redis-limit-store.ts shares the counters through Redis.
 */
import type { CounterWindow } from '../limits/windows.js';

/** What admission asks of one key: its request window (when requests are limited) and token windows. */
export interface LimitCheck {
  key: string;
  requests: CounterWindow | undefined;
  tokens: readonly CounterWindow[];
}

/** What the store counted: refused when any window is used up (`used >= limit`). */
export interface LimitCount {
  admitted: boolean;
  /** Requests in the window, this one included when admitted (0 without a request window). */
  requests: number;
  /** Tokens already used in each of `tokens`' windows, in order. */
  tokens: number[];
}

export interface LimitStore {
  /** Checks every window; when none is used up, counts the request. Shared stores may answer later. */
  admit(check: LimitCheck): LimitCount | Promise<LimitCount>;
  /** Takes back a request admission counted (the request was refused after all: no concurrency slot). */
  refund(key: string, requests: CounterWindow): void;
  /** Adds a finished request's tokens to each window. Nothing waits for it. */
  charge(key: string, tokens: readonly CounterWindow[], amount: number): void;
}

interface Counter {
  id: string;
  n: number;
}

/**
 * This process's counters: one per key and kind (a window's id starts with its kind), reset when a
 * new window starts. Bounded by the configured keys: nothing a client sends makes an entry.
 */
export class MemoryLimitStore implements LimitStore {
  private readonly counters = new Map<string, Counter>();

  admit(check: LimitCheck): LimitCount {
    const tokens = check.tokens.map((w) => this.read(check.key, w));
    const requests = check.requests === undefined ? 0 : this.read(check.key, check.requests);
    const admitted =
      check.tokens.every((w, i) => tokens[i]! < w.limit) &&
      (check.requests === undefined || requests < check.requests.limit);
    if (!admitted || check.requests === undefined) return { admitted, requests, tokens };
    return { admitted, requests: this.add(check.key, check.requests, 1), tokens };
  }

  /** Counts an admission another store decided (the mirror of a shared store). */
  count(key: string, requests: CounterWindow | undefined): void {
    if (requests !== undefined) this.add(key, requests, 1);
  }

  refund(key: string, requests: CounterWindow): void {
    const c = this.counters.get(slotOf(key, requests));
    if (c !== undefined && c.id === requests.id && c.n > 0) c.n--;
  }

  charge(key: string, tokens: readonly CounterWindow[], amount: number): void {
    for (const w of tokens) this.add(key, w, amount);
  }

  /** What the counter of `w` holds now. */
  read(key: string, w: CounterWindow): number {
    const c = this.counters.get(slotOf(key, w));
    return c !== undefined && c.id === w.id ? c.n : 0;
  }

  private add(key: string, w: CounterWindow, n: number): number {
    const slot = slotOf(key, w);
    const c = this.counters.get(slot);
    if (c === undefined || c.id !== w.id) {
      this.counters.set(slot, { id: w.id, n });
      return n;
    }
    return (c.n += n);
  }
}

/** One counter per key and kind: the id's kind prefix (`rm`, `tm`, `td`, `tM`). */
function slotOf(key: string, w: CounterWindow): string {
  return key + '\n' + w.id.slice(0, 2);
}
