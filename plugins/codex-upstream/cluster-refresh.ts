/**
 * One Codex token refresh per account for the whole cluster (`state.store: redis`): the processes
 * and instances serving an account agree on its tokens through the shared store, so a refresh token
 * is sent once, by one process, and the tokens it brings reach every other process at once.
 *
 * An account is known by its first upstream's name (instances sharing an account name it alike).
 * In the store:
 * - `codex:tokens:<name>`: the tokens as JSON, with the fence of the lock they were written under
 *   (and `dead` once the login died). A process adopts them when they are newer than its own.
 * - `codex:refresh:<name>`: the refresher's lock, fenced, outliving the token request.
 * - `codex:spent:<sha256 of a refresh token>`: claimed before the token is sent. A claimed token is
 *   never sent again: its sender may hold the tokens it was traded for, and a second send
 *   (`refresh_token_reused`) kills them. A send that brought nothing back gives its claim up.
 * Changes are announced on the channel `codex:tokens`; a waiter re-reads on a timer too, since a
 * message can be lost.
 *
 * The store unreachable before anything was sent: the process refreshes alone (as with `memory`),
 * and offers its tokens to the store until it takes them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  SharedStoreUnavailableError,
  type ClusterLock,
  type ClusterStore,
  type Logger,
} from '../../core/index.js';
import type { CodexAccount } from './account.js';
import type { CodexTokens } from './credentials.js';
import { parseJsonObject } from './json-object.js';
import { REFRESH_TIMEOUT_MS, RefreshFailure, type RefreshedTokens } from './refresh.js';

export const TOKENS_CHANNEL = 'codex:tokens';
/** The lock outlives the token request: a refresher never loses it while its token is in flight. */
const LOCK_TTL_MS = REFRESH_TIMEOUT_MS + 10_000;
/** While another process refreshes, the record is re-read this often. */
const POLL_MS = 1000;
/** A sent refresh token is remembered this long. */
const SPENT_TTL_MS = 7 * 24 * 60 * 60_000;
/** A refresh token found spent with no tokens to show for it: how long its tokens are waited for. */
const SPENT_WAIT_MS = 3000;
/** Tokens the store could not take are offered again this often. */
const SHARE_RETRY_MS = 1000;

type TokenEvent = 'refreshed' | 'failed' | 'dead';
const CLOSING = new RefreshFailure(false, 'closing', 'the gateway is shutting down');
const EVENTS: ReadonlySet<string> = new Set<TokenEvent>(['refreshed', 'failed', 'dead']);

/** The shared record of an account's tokens. */
interface StoredTokens extends CodexTokens {
  fence: number;
  /** The login died (the deadReason, e.g. `refresh failed: invalid_grant`). */
  dead?: string;
}

/** What the coordination settled on, before anything was sent. */
type Plan =
  | { kind: 'done' }
  | { kind: 'send'; lock: ClusterLock; spent: string }
  | { kind: 'spent' }
  | { kind: 'alone'; holderSeen: boolean };

/** The plugin's link to the store: one subscription, and the accounts it serves by name. */
export class ClusterTokens {
  /** Tells this gateway's own messages apart. */
  private readonly origin = randomUUID();
  private readonly accounts = new Map<string, ClusterRefresh>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly log: Logger,
  ) {}

  /** Coordinates `account`'s refreshes under `key` (its first upstream's name). */
  attach(key: string, account: CodexAccount): ClusterRefresh {
    this.unsubscribe ??= this.store.subscribe(TOKENS_CHANNEL, (message) => this.onMessage(message));
    const c = new ClusterRefresh(this.store, key, this.origin, account, this.log);
    this.accounts.set(key, c);
    return c;
  }

  /** The account left the pool (a reload removed its last upstream). */
  detach(c: ClusterRefresh): void {
    for (const [key, v] of this.accounts) if (v === c) this.accounts.delete(key);
    c.stop();
  }

  close(): void {
    this.unsubscribe?.();
    for (const c of this.accounts.values()) c.stop();
  }

  private onMessage(message: string): void {
    const m = parseJsonObject(message);
    if (m === undefined || m.from === this.origin || typeof m.key !== 'string') return;
    if (typeof m.event === 'string' && EVENTS.has(m.event))
      this.accounts.get(m.key)?.onMessage(m.event as TokenEvent);
  }
}

export class ClusterRefresh {
  /** Wakes the refresh waiting for another process's news. */
  private wake: ((event?: TokenEvent) => void) | undefined;
  /** Hashes of refresh tokens spent while the store could not record it. */
  private readonly unshared = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private sharing = false;
  /** The gateway is closing: nothing is waited for any more. */
  private stopped = false;

  constructor(
    private readonly store: ClusterStore,
    /** The account's name in the store. (Not `key`: the secret scrubber takes whatever ends in key.) */
    private readonly name: string,
    private readonly origin: string,
    private readonly account: CodexAccount,
    private readonly log: Logger,
  ) {}

  /** The account's refresh (of generation `start`) for the cluster. Called single-flight by the account. */
  async refresh(start: number): Promise<void> {
    // Past its lock's TTL a holder is gone; one more poll, and the lock is free to take.
    const deadline = Date.now() + LOCK_TTL_MS + POLL_MS;
    const plan = await this.coordinate(start, deadline);
    if (plan.kind === 'send') return this.send(plan.lock, plan.spent);
    if (plan.kind === 'spent') return this.spentElsewhere();
    if (plan.kind === 'alone') return this.alone(plan.holderSeen ? deadline : 0);
  }

  /** Another process's message about this account. */
  onMessage(event: TokenEvent): void {
    if (this.wake !== undefined) return this.wake(event);
    // Tokens visible at once, not only at this process's next refresh.
    this.quietly(() => this.adoptStored()).catch(() => undefined);
  }

  /** Offers the account's tokens to the store now (and every second until it takes them). */
  offer(): void {
    this.shareLater();
    void this.shareNow();
  }

  /** At close: no more offers to the store, and a wait for another process ends now. */
  stop(): void {
    this.stopped = true;
    this.stopSharing();
    this.wake?.();
  }

  /** Adopts what the store has, takes the lock and claims the refresh token, or waits for a holder. */
  private async coordinate(start: number, deadline: number): Promise<Plan> {
    let holderSeen = false;
    try {
      for (;;) {
        await this.adoptStored();
        if (this.renewedSince(start)) return { kind: 'done' };
        const lock = await this.store.lock(this.lockName(), LOCK_TTL_MS);
        if (lock !== undefined) return await this.underLock(lock, start);
        if (!holderSeen) {
          holderSeen = true;
          this.log.debug(
            { upstreams: this.account.upstreams },
            'codex token refresh running in another process: waiting for its tokens',
          );
        }
        const event = await this.news(Math.min(POLL_MS, deadline - Date.now()));
        if (this.stopped) throw this.account.backOff(CLOSING);
        if (event === 'failed') {
          // Its failure is this process's too: the back-off holds for the cluster.
          await this.adoptStored();
          if (this.renewedSince(start)) return { kind: 'done' };
          throw this.account.backOff(
            new RefreshFailure(false, 'failed_elsewhere', "another process's token refresh failed"),
          );
        }
        if (Date.now() >= deadline)
          throw this.account.backOff(
            new RefreshFailure(false, 'timeout', "timed out waiting for another process's token refresh"),
          );
      }
    } catch (err) {
      if (err instanceof SharedStoreUnavailableError) return { kind: 'alone', holderSeen };
      throw err;
    }
  }

  /** Holding the lock: adopt what a refresh just before left, else claim the refresh token. */
  private async underLock(lock: ClusterLock, start: number): Promise<Plan> {
    let plan: Plan = { kind: 'done' };
    try {
      await this.adoptStored();
      if (!this.renewedSince(start)) {
        const spent = spentKey(this.account.tokens.refreshToken);
        const claimed = await this.store.claim(spent, this.origin, SPENT_TTL_MS);
        plan = claimed ? { kind: 'send', lock, spent } : { kind: 'spent' };
      }
    } finally {
      if (plan.kind !== 'send') await this.quietly(() => lock.release());
    }
    return plan;
  }

  /**
   * Sends the claimed refresh token. From here a store error only delays the sharing: nothing is
   * sent again. Only this process writes the auth file.
   */
  private async send(lock: ClusterLock, spent: string): Promise<void> {
    const account = this.account;
    const sent = account.tokens.refreshToken;
    try {
      let fresh: RefreshedTokens;
      try {
        fresh = await account.requestRefresh();
      } catch (err) {
        return await this.failed(lock, spent, err as RefreshFailure);
      }
      account.applyRefreshed(fresh, lock.fence);
      // A refresh token the endpoint did not rotate stays live: it may be sent again.
      if (account.tokens.refreshToken === sent) await this.quietly(() => this.unclaim(spent));
      if ((await this.quietly(() => this.writeRecord(lock))) !== true) this.shareLater();
    } finally {
      await this.quietly(() => lock.release());
    }
    await account.writeBack();
  }

  /** The claimed token's refresh failed: returns when the login was rescued, else throws. */
  private async failed(lock: ClusterLock, spent: string, f: RefreshFailure): Promise<void> {
    const account = this.account;
    if (!f.terminal) {
      // No tokens came back, so nobody holds tokens this one was traded for: it may be sent again.
      await this.quietly(() => this.unclaim(spent));
      const failure = account.backOff(f);
      await this.quietly(() => this.tell('failed'));
      throw failure;
    }
    // The login may live on: Codex CLI refreshed it (the file), or a process did while the store was away.
    const start = account.generation;
    if (await account.adoptFromFile()) return;
    await this.quietly(() => this.adoptStored());
    if (this.renewedSince(start)) return;
    const failure = account.die(f);
    await this.quietly(() => this.writeRecord(lock, account.deadReason));
    throw failure;
  }

  /**
   * The refresh token is claimed, yet the store has nothing newer: its sender crashed, or could not
   * write the record (the store went away). It is never sent again; its tokens may still come (the
   * sender shares them once it can, or wrote the auth file).
   */
  private async spentElsewhere(): Promise<void> {
    const account = this.account;
    const start = account.generation;
    const until = Date.now() + SPENT_WAIT_MS;
    for (;;) {
      if (await account.adoptFromFile()) return;
      await this.quietly(() => this.adoptStored());
      if (this.renewedSince(start)) return;
      if (Date.now() >= until || this.stopped) break;
      await this.news(Math.min(POLL_MS, until - Date.now()));
    }
    throw account.backOff(
      new RefreshFailure(
        false,
        'refresh_token_spent',
        'its refresh token was sent by another process, whose new tokens never reached the shared store; log in again (codex login) if this lasts',
      ),
    );
  }

  /** The store is unreachable: refresh in this process alone, then offer the tokens to the store. */
  private async alone(holderUntil: number): Promise<void> {
    const account = this.account;
    this.log.debug(
      { upstreams: account.upstreams },
      'shared store unavailable: codex tokens refreshed by this process alone',
    );
    // A process was refreshing when the store went, and may be sending this very refresh token:
    // until its lock would have expired, only the auth file it writes is watched.
    while (Date.now() < holderUntil) {
      if (this.stopped) throw account.backOff(CLOSING);
      if (await account.adoptFromFile()) return;
      await delay(POLL_MS);
    }
    const start = account.generation;
    const sent = account.tokens.refreshToken;
    await account.refreshAlone();
    if (account.generation === start) return;
    if (account.tokens.refreshToken !== sent) this.unshared.add(spentKey(sent));
    this.shareLater();
  }

  /** Reads the record: newer tokens of this account are adopted; a dead login is dead here too. */
  private async adoptStored(): Promise<void> {
    const stored = parseStored(await this.store.get(this.recordKey()));
    if (stored === undefined) return;
    const account = this.account;
    const order = compare(stored, account);
    if (order === 'other' || order === 'older') return;
    if (stored.dead !== undefined) throw account.diedElsewhere(stored.dead);
    if (order === 'newer') account.adopt(tokensOf(stored), stored.fence);
  }

  /** The tokens as the record (fenced: only while `lock` holds), announced to the others. */
  private async writeRecord(lock: ClusterLock, dead?: string): Promise<boolean> {
    const record: StoredTokens = { ...tokensOf(this.account.tokens), fence: lock.fence };
    if (dead !== undefined) record.dead = dead;
    if (!(await lock.setIfHeld(this.recordKey(), JSON.stringify(record)))) return false;
    await this.tell(dead === undefined ? 'refreshed' : 'dead');
    return true;
  }

  /** Offers the tokens to the store every second until it takes them or holds newer ones. */
  private shareLater(): void {
    if (this.retry !== undefined) return;
    this.retry = setInterval(() => void this.shareNow(), SHARE_RETRY_MS);
    this.retry.unref();
  }

  private async shareNow(): Promise<void> {
    if (this.sharing) return;
    this.sharing = true;
    const account = this.account;
    try {
      const lock = await this.store.lock(this.lockName(), LOCK_TTL_MS);
      if (lock === undefined) return; // another refresh runs: its record settles it
      try {
        for (const spent of this.unshared) await this.store.claim(spent, this.origin, SPENT_TTL_MS);
        this.unshared.clear();
        const stored = parseStored(await this.store.get(this.recordKey()));
        const order = stored === undefined ? 'older' : compare(stored, account);
        if (order === 'newer') await this.adoptStored();
        else if (order !== 'same' && account.deadReason === undefined) {
          if (!(await this.writeRecord(lock))) return;
          account.fence = lock.fence;
          this.log.info({ upstreams: account.upstreams }, 'codex tokens refreshed alone now shared');
        }
        this.stopSharing();
      } finally {
        await lock.release();
      }
    } catch (err) {
      // Still unreachable: tried again on the next tick. A dead record stops the offers.
      if (!(err instanceof SharedStoreUnavailableError)) this.stopSharing();
    } finally {
      this.sharing = false;
    }
  }

  private stopSharing(): void {
    if (this.retry !== undefined) clearInterval(this.retry);
    this.retry = undefined;
  }

  /** Resolves on another process's news about this account, or after `ms`. */
  private news(ms: number): Promise<TokenEvent | undefined> {
    return new Promise((resolve) => {
      const done = (event?: TokenEvent) => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(event);
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.wake = done;
    });
  }

  /** New tokens since `start`, and fit to use: nothing left to refresh. */
  private renewedSince(start: number): boolean {
    return this.account.generation !== start && !this.account.due();
  }

  private tell(event: TokenEvent): Promise<void> {
    return this.store.publish(TOKENS_CHANNEL, JSON.stringify({ key: this.name, from: this.origin, event }));
  }

  /** The store has no delete: a 1 ms TTL lets the claim lapse. */
  private unclaim(spent: string): Promise<void> {
    return this.store.set(spent, 'unsent', 1);
  }

  /** Runs a store operation whose failure only costs the sharing; undefined when the store is away. */
  private async quietly<T>(op: () => Promise<T>): Promise<T | undefined> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof SharedStoreUnavailableError) return undefined;
      throw err;
    }
  }

  private recordKey(): string {
    return `codex:tokens:${this.name}`;
  }

  private lockName(): string {
    return `codex:refresh:${this.name}`;
  }
}

function spentKey(refreshToken: string): string {
  return `codex:spent:${createHash('sha256').update(refreshToken).digest('hex')}`;
}

function tokensOf(t: CodexTokens): CodexTokens {
  return {
    accessToken: t.accessToken,
    refreshToken: t.refreshToken,
    idToken: t.idToken,
    accountId: t.accountId,
    expiresAt: t.expiresAt,
  };
}

/** How the record stands to the account's tokens. Equal expiries (to the second) go by fence. */
function compare(stored: StoredTokens, account: CodexAccount): 'newer' | 'same' | 'older' | 'other' {
  const ours = account.tokens;
  if (stored.accountId !== ours.accountId) return 'other';
  if (stored.accessToken === ours.accessToken && stored.refreshToken === ours.refreshToken) return 'same';
  if (stored.expiresAt !== ours.expiresAt) return stored.expiresAt > ours.expiresAt ? 'newer' : 'older';
  return stored.fence > account.fence ? 'newer' : 'older';
}

/** The record, or undefined when absent or not one (never quoted: it holds tokens). */
function parseStored(text: string | undefined): StoredTokens | undefined {
  const r = text === undefined ? undefined : parseJsonObject(text);
  if (r === undefined) return undefined;
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  if (!str(r.accessToken) || !str(r.refreshToken) || !str(r.accountId)) return undefined;
  if (typeof r.expiresAt !== 'number' || typeof r.fence !== 'number') return undefined;
  if (r.idToken !== undefined && !str(r.idToken)) return undefined;
  if (r.dead !== undefined && !str(r.dead)) return undefined;
  return r as unknown as StoredTokens;
}
