/**
 * What plugins coordinate through across processes: small values, claims, locks with fencing, and
 * channels. With `state.store: redis` it is Redis, shared by every worker and instance on the same
 * `keyPrefix`; with `memory` it is this process alone (`shared` false), with the same semantics, so
 * a plugin has one code path.
 *
 * A Redis operation that fails or outlasts `state.timeout` rejects with SharedStoreUnavailableError:
 * the caller falls back to what it can do alone. Keys and channels are the caller's names; the store
 * adds the prefix. Values may be secrets (tokens): the store never logs them.
 */

export interface ClusterLock {
  /** Grows with every lock taken on this store: a later holder always has a larger fence. */
  readonly fence: number;
  /** Sets `key` only while this lock is still held (it may have expired): the fenced write. */
  setIfHeld(key: string, value: string, ttlMs?: number): Promise<boolean>;
  /** Lets the lock go if it is still this holder's. */
  release(): Promise<void>;
}

export interface ClusterStore {
  /** True when other processes see the same state (Redis). */
  readonly shared: boolean;
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets `key` only when it is absent: true for the one caller that did (a claim). */
  claim(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** The lock on `name` for `ttlMs`, or undefined while another holder has it. */
  lock(name: string, ttlMs: number): Promise<ClusterLock | undefined>;
  publish(channel: string, message: string): Promise<void>;
  /** Messages on `channel` from every process, this one included. Returns the unsubscribe. */
  subscribe(channel: string, listener: (message: string) => void): () => void;
}

/** The shared store cannot answer now (down, or slower than `state.timeout`). */
export class SharedStoreUnavailableError extends Error {
  override name = 'SharedStoreUnavailableError';
}

interface Entry {
  value: string;
  /** Epoch ms, or Infinity. */
  until: number;
}

/** The single-process ClusterStore (`state.store: memory`). */
export class MemoryClusterStore implements ClusterStore {
  readonly shared = false;
  private readonly values = new Map<string, Entry>();
  private readonly locks = new Map<string, { fence: number; until: number }>();
  private readonly listeners = new Map<string, Set<(message: string) => void>>();
  private fences = 0;

  get(key: string): Promise<string | undefined> {
    return Promise.resolve(this.read(key));
  }

  set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.values.set(key, { value, until: ttlMs === undefined ? Infinity : Date.now() + ttlMs });
    return Promise.resolve();
  }

  claim(key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.read(key) !== undefined) return Promise.resolve(false);
    this.values.set(key, { value, until: Date.now() + ttlMs });
    return Promise.resolve(true);
  }

  lock(name: string, ttlMs: number): Promise<ClusterLock | undefined> {
    const now = Date.now();
    const held = this.locks.get(name);
    if (held !== undefined && held.until > now) return Promise.resolve(undefined);
    const fence = ++this.fences;
    this.locks.set(name, { fence, until: now + ttlMs });
    const isHeld = () => {
      const l = this.locks.get(name);
      return l !== undefined && l.fence === fence && l.until > Date.now();
    };
    return Promise.resolve({
      fence,
      setIfHeld: async (key: string, value: string, ttl?: number) => {
        if (!isHeld()) return false;
        await this.set(key, value, ttl);
        return true;
      },
      release: () => {
        if (this.locks.get(name)?.fence === fence) this.locks.delete(name);
        return Promise.resolve();
      },
    });
  }

  publish(channel: string, message: string): Promise<void> {
    for (const l of [...(this.listeners.get(channel) ?? [])]) queueMicrotask(() => l(message));
    return Promise.resolve();
  }

  subscribe(channel: string, listener: (message: string) => void): () => void {
    let set = this.listeners.get(channel);
    if (set === undefined) this.listeners.set(channel, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private read(key: string): string | undefined {
    const e = this.values.get(key);
    if (e === undefined) return undefined;
    if (e.until <= Date.now()) {
      this.values.delete(key);
      return undefined;
    }
    return e.value;
  }
}
