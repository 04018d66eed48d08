/**
 * Where the soak's clients and its upstream meet, by request id (both live in the soak's process):
 * the upstream says "I have this request" (a client then hangs up while the gateway waits); a client
 * says "I saw output" (the upstream then breaks the stream, so the fault is truly mid-stream) and
 * "I hung up" (the upstream then times how long the gateway takes to cancel). Either side may come
 * first. A request's points are dropped when it ends, so nothing accumulates.
 */

interface Point {
  fired: boolean;
  /** Waiters: each settles once, true when fired, false on its timeout or when forgotten. */
  waiters: Set<(fired: boolean) => void>;
}

export class Rendezvous {
  private readonly points = new Map<string, Point>();

  private point(key: string): Point {
    let p = this.points.get(key);
    if (p === undefined) this.points.set(key, (p = { fired: false, waiters: new Set() }));
    return p;
  }

  /** Resolves true once `fire(key)` is called (or was), false after `ms` or if the request is forgotten. */
  wait(key: string, ms: number): Promise<boolean> {
    const p = this.point(key);
    if (p.fired) return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = (fired: boolean) => {
        clearTimeout(timer);
        p.waiters.delete(settle);
        resolve(fired);
      };
      const timer = setTimeout(settle, ms, false);
      p.waiters.add(settle);
    });
  }

  fire(key: string): void {
    const p = this.point(key);
    p.fired = true;
    for (const w of [...p.waiters]) w(true);
  }

  /** The request is over: its points go, and whoever still waits on them gets false. */
  forget(id: string): void {
    for (const key of [reachedKey(id), outputKey(id), goneKey(id)]) {
      const p = this.points.get(key);
      if (p === undefined) continue;
      this.points.delete(key);
      for (const w of [...p.waiters]) w(false);
    }
  }

  get size(): number {
    return this.points.size;
  }
}

export const reachedKey = (id: string): string => `${id}:reached`;
export const outputKey = (id: string): string => `${id}:output`;
export const goneKey = (id: string): string => `${id}:gone`;
