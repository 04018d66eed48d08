/**
 * The gateway's connection to Redis (`state.store: redis`): one connection for commands, one for
 * channels, and whether Redis answers right now.
 *
 * Nothing waits for Redis: commands are never queued while it is away (they fail at once), each one
 * fails after `state.timeout`, and the callers then use this process's own state. The first failure
 * logs one warning; while down, no command is tried (a probe checks every second), so requests pay
 * nothing for a Redis that is gone. When it answers again, one line says so and `onUp` listeners
 * (the stores) push and re-read their state.
 */
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { Logger } from '../observe/logger.js';
import type { Secrets } from '../observe/secrets.js';
import { SharedStoreUnavailableError } from './cluster-store.js';

export interface RedisLinkOptions {
  url: string;
  keyPrefix: string;
  timeoutMs: number;
  logger: Logger;
  secrets: Secrets;
}

// ioredis is ~10 MB of RSS once loaded: required when a Redis store is configured, not at every boot.
const requireHere = createRequire(import.meta.url);

/** While Redis is down, a PING tries it this often (besides the client's own reconnects). */
const PROBE_EVERY_MS = 1000;
/** At boot, how long the first connection may take before the gateway starts without it. */
const BOOT_CONNECT_MS = 2000;

export class RedisLink {
  readonly command: Redis;
  readonly subscriber: Redis;
  readonly prefix: string;
  /** Unique per process: messages a process published itself are recognised. */
  readonly id = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  private healthy = false;
  /** Set once the link was up or its absence was reported: the first outage is logged once. */
  private reported = false;
  private probe: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly upListeners: (() => void)[] = [];
  /** The connection's latest error (ECONNREFUSED, WRONGPASS…), for the boot warning. */
  private lastError: string | undefined;
  private readonly channels = new Map<string, Set<(message: string) => void>>();
  /** SUBSCRIBE commands sent before start(): it waits for them. */
  private readonly subscriptions: Promise<unknown>[] = [];
  private started = false;
  private readonly log: Logger;
  /** The URL as logs show it: no password. */
  readonly where: string;

  constructor(private readonly options: RedisLinkOptions) {
    this.prefix = options.keyPrefix;
    this.log = options.logger.child({ component: 'state' });
    const parsed = new URL(options.url);
    if (parsed.password !== '') options.secrets.add(decodeURIComponent(parsed.password));
    parsed.password = '';
    parsed.username = '';
    this.where = parsed.toString();
    const common: RedisOptions = {
      connectionName: 'tapgate',
      connectTimeout: Math.max(1000, options.timeoutMs),
      maxRetriesPerRequest: 0,
      // Reconnect forever, backing off to 2 s: Redis coming back is picked up on its own.
      retryStrategy: (times) => Math.min(100 * times, 2000),
    };
    const { Redis: RedisClient } = requireHere('ioredis') as { Redis: typeof Redis };
    this.command = new RedisClient(options.url, {
      ...common,
      enableOfflineQueue: false,
      commandTimeout: options.timeoutMs,
    });
    // Subscriptions are replayed by the client after a reconnect; queued until connected.
    this.subscriber = new RedisClient(options.url, { ...common, enableOfflineQueue: true });
    // Connection errors are the outage itself: reported once, by state changes below (with the latest).
    this.command.on('error', (err: Error) => (this.lastError = err.message));
    this.subscriber.on('error', () => undefined);
    this.command.on('ready', () => this.markUp());
    this.command.on('close', () => this.markDown('connection lost'));
    this.subscriber.on('message', (channel: string, message: string) => {
      for (const l of this.channels.get(channel) ?? []) l(message);
    });
  }

  /**
   * Waits (briefly) for the first connection and for the channels subscribed so far, so no change
   * another process makes after this one starts serving is missed. The gateway starts either way.
   */
  async start(): Promise<void> {
    const ready = this.healthy
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          // Refused at once: no need to wait out the bound (a timeout still waits for it).
          this.command.once('ready', () => resolve());
          this.command.once('error', () => resolve());
        });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([ready, ...this.subscriptions]),
      new Promise((resolve) => (timer = setTimeout(resolve, BOOT_CONNECT_MS))),
    ]);
    clearTimeout(timer);
    // Later subscriptions are not waited for: nothing serves before this returns.
    this.subscriptions.length = 0;
    this.started = true;
    if (this.healthy) {
      this.log.info({ redis: this.where }, 'shared state on Redis');
    } else {
      this.reported = true;
      this.log.warn(
        { redis: this.where, reason: this.lastError?.slice(0, 200) ?? 'no answer' },
        "Redis unreachable at boot: serving on this process's own state, reconnecting in the background",
      );
      this.startProbe();
    }
  }

  /** Redis answered its last command (or its connection is ready and nothing has failed since). */
  get up(): boolean {
    return this.healthy;
  }

  /** Called when Redis answers again after an outage (and at the first connection after boot). */
  onUp(listener: () => void): void {
    this.upListeners.push(listener);
  }

  /**
   * Runs one Redis operation. Down, slow past `state.timeout`, or failing: throws
   * SharedStoreUnavailableError, and the first such failure is the one warning of the outage.
   */
  async run<T>(op: (redis: Redis) => Promise<T>): Promise<T> {
    if (!this.healthy) throw new SharedStoreUnavailableError('Redis is unavailable');
    try {
      return await op(this.command);
    } catch (err) {
      // A script or argument error is a bug, not an outage: it is thrown as it is.
      if (
        err instanceof Error &&
        err.name === 'ReplyError' &&
        !/^(LOADING|BUSY|MASTERDOWN|READONLY)/.test(err.message)
      )
        throw err;
      this.markDown((err as Error).message);
      throw new SharedStoreUnavailableError('Redis is unavailable');
    }
  }

  /** Fire and forget: the write is tried if Redis is up, and a failure only marks it down. */
  fire(op: (redis: Redis) => Promise<unknown>): void {
    if (!this.healthy) return;
    this.run(op).catch(() => undefined);
  }

  key(name: string): string {
    return this.prefix + name;
  }

  /** A channel's name in Redis: under the prefix, apart from keys. */
  channel(name: string): string {
    return this.prefix + 'ch:' + name;
  }

  subscribe(channel: string, listener: (message: string) => void): () => void {
    const full = this.channel(channel);
    let set = this.channels.get(full);
    if (set === undefined) {
      this.channels.set(full, (set = new Set()));
      const done = this.subscriber.subscribe(full).catch(() => undefined);
      if (!this.started) this.subscriptions.push(done);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0 || this.channels.get(full) !== set) return;
      this.channels.delete(full);
      if (!this.closed) this.subscriber.unsubscribe(full).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probe !== undefined) clearInterval(this.probe);
    // quit() lets sent writes (a release, a cooldown) finish; a dead link is just dropped.
    await Promise.all(
      [this.command, this.subscriber].map((c) =>
        c.status === 'ready'
          ? Promise.race([c.quit().catch(() => undefined), delay(this.options.timeoutMs)]).then(() =>
              c.disconnect(),
            )
          : c.disconnect(),
      ),
    );
  }

  private markDown(why: string): void {
    if (this.closed || !this.healthy) return;
    this.healthy = false;
    this.reported = true;
    this.log.warn(
      { redis: this.where, reason: why.slice(0, 200) },
      "Redis unavailable: pool state falls back to this process's own until it is back",
    );
    this.startProbe();
  }

  private markUp(): void {
    if (this.closed || this.healthy) return;
    this.healthy = true;
    if (this.probe !== undefined) clearInterval(this.probe);
    this.probe = undefined;
    if (this.reported) this.log.info({ redis: this.where }, 'Redis is back: shared state resumed');
    for (const l of this.upListeners) {
      try {
        l();
      } catch (err) {
        this.log.error({ err }, 'resuming shared state failed');
      }
    }
  }

  /** A connection can stay open while Redis is too slow: a PING within the timeout brings it back. */
  private startProbe(): void {
    if (this.probe !== undefined || this.closed) return;
    this.probe = setInterval(() => {
      if (this.command.status !== 'ready') return;
      this.command.ping().then(
        () => this.markUp(),
        () => undefined,
      );
    }, PROBE_EVERY_MS);
    this.probe.unref();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
