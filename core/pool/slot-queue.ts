/**
 * Requests waiting for a concurrency slot. FIFO and bounded; a released slot wakes the waiters,
 * which re-check the pool in arrival order. A waiter leaves on a slot, its timeout, or its client
 * going away — it never outlives any of them.
 */

export type WaitResult = 'slot' | 'timeout' | 'cancelled';

interface Waiter {
  resolve: (r: WaitResult) => void;
  timer: NodeJS.Timeout;
}

export class SlotQueue {
  private waiters: Waiter[] = [];

  constructor(
    /** Mutable: a config reload sets them (`pool.queue`); waiters already queued keep their deadline. */
    public maxQueue: number,
    public waitTimeout: number,
  ) {}

  get length(): number {
    return this.waiters.length;
  }

  get full(): boolean {
    return this.waiters.length >= this.maxQueue;
  }

  /** Waits for a slot to be released (or times out). `cancel` lets the caller leave early. */
  wait(timeoutMs: number = this.waitTimeout): { done: Promise<WaitResult>; cancel: () => void } {
    let waiter!: Waiter;
    const done = new Promise<WaitResult>((resolve) => {
      waiter = {
        resolve,
        timer: setTimeout(() => this.leave(waiter, 'timeout'), timeoutMs),
      };
    });
    this.waiters.push(waiter);
    return { done, cancel: () => this.leave(waiter, 'cancelled') };
  }

  /** A slot was released: everyone re-checks, in arrival order. */
  notify(): void {
    if (this.waiters.length === 0) return;
    const woken = this.waiters;
    this.waiters = [];
    for (const w of woken) {
      clearTimeout(w.timer);
      w.resolve('slot');
    }
  }

  /** Ends every wait (shutdown). */
  clear(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) {
      clearTimeout(w.timer);
      w.resolve('cancelled');
    }
  }

  private leave(waiter: Waiter, result: WaitResult): void {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    clearTimeout(waiter.timer);
    waiter.resolve(result);
  }
}
