/**
 * One Codex account's live credentials: the tokens, their generation, and the single-flight
 * refresh. Every request that needs a refresh while one is running waits for that one, so the
 * refresh token is spent exactly once (two concurrent refreshes burn it: `refresh_token_reused`).
 * A request whose token still works does not wait for a refresh ahead of expiry. With a shared
 * store, the process's one refresh is in turn the cluster's one (cluster-refresh.ts).
 */
import type { Logger, TokenRefreshResult } from '../../core/index.js';
import type { ClusterRefresh } from './cluster-refresh.js';
import { readAuthDoc, tokensOfDoc, writeBackTokens, type CodexTokens } from './credentials.js';
import { CodexRefreshError } from './errors.js';
import { RefreshFailure, requestTokenRefresh, type RefreshedTokens } from './refresh.js';

/** An access token this close to its `exp` is treated as expired (clock skew, time in flight). */
export const EXPIRY_SKEW_MS = 30_000;

/** An auth.json, with the document last read or written (kept for fields tapgate does not know). */
export interface FileSource {
  kind: 'file';
  path: string;
  doc: Record<string, unknown>;
}
export type CredentialSource = FileSource | { kind: 'inline' };

export interface AccountOptions {
  tokenUrl: string;
  clientId: string;
  userAgent: string;
  refreshAheadMs: number;
  /** After a transient refresh failure, no new attempt for this long. */
  retryBackoffMs: number;
  log: Logger;
  /** A terminal refresh failure: disable every upstream on this account, with this reason. */
  onDead(reason: string): void;
  /** A transient failure left the account with no usable token: cool its upstreams briefly. */
  onUnusable(reason: string): void;
  /** A dead login came back (a new one, from another process): enable what `onDead(reason)` disabled. */
  onRevived?(reason: string): void;
  /** Every refresh's result, for `tapgate_token_refreshes_total`. */
  onRefresh?(result: TokenRefreshResult): void;
}

export class CodexAccount {
  tokens: CodexTokens;
  /** Bumped on every new access token; a 401 on generation g forces a refresh only while g is current. */
  generation = 0;
  /** The lock fence of the shared record the tokens came from (0: not from the store): breaks expiry ties. */
  fence = 0;
  /** Set with a shared store: the refresh is coordinated with the other processes. */
  cluster: ClusterRefresh | undefined;
  /** Names of the upstreams on this account (several may share one auth.json). */
  readonly upstreams: string[] = [];
  /** Set once a refresh failed terminally; no refresh is ever tried again. */
  deadReason: string | undefined;
  private inflight: Promise<void> | undefined;
  /** The running refresh was forced by a 401: the current token is suspect, so everyone waits for it. */
  private inflightForced = false;
  private lastFailure: CodexRefreshError | undefined;
  private retryAt = 0;
  /** Token endpoint answers taken (applyRefreshed): tells a refresh from an adoption. */
  private refreshes = 0;

  constructor(
    tokens: CodexTokens,
    readonly source: CredentialSource,
    private readonly opts: AccountOptions,
  ) {
    this.tokens = tokens;
  }

  /** The access token can no longer be sent as is. */
  expired(now = Date.now()): boolean {
    return now >= this.tokens.expiresAt - EXPIRY_SKEW_MS;
  }

  /** Within `refreshAhead` of expiry: time to refresh. */
  due(now = Date.now()): boolean {
    return now >= this.tokens.expiresAt - this.opts.refreshAheadMs;
  }

  /**
   * Makes the tokens fit to send. `force`: the backend rejected the access token of generation
   * `seen` (a 401), so it is refreshed unless a newer one already exists. A refresh ahead of expiry
   * that fails leaves a still-valid token in use; only a request that cannot go out throws.
   */
  async ensure(force: boolean, seen: number | undefined): Promise<void> {
    const forced = force && seen === this.generation;
    const needed = (): boolean => (force && seen === this.generation) || this.expired();
    if (this.inflight === undefined) {
      if (!forced && !this.due()) return;
      if (this.deadReason !== undefined || Date.now() < this.retryAt) {
        // Never loop on a dead login, and do not hammer a failing token endpoint.
        if (needed())
          throw this.lastFailure ?? new CodexRefreshError(true, this.deadReason ?? 'refresh failed');
        return;
      }
      this.inflightForced = forced;
      this.inflight = this.refresh().finally(() => {
        this.inflight = undefined;
        this.inflightForced = false;
      });
    } else if (!needed() && !this.inflightForced) {
      // A refresh ahead of expiry is running and this token still works: no need to wait for it.
      return;
    }
    try {
      await this.inflight;
    } catch (err) {
      if (!needed()) return; // the current token still works
      if (!(err as CodexRefreshError).terminal) this.opts.onUnusable((err as Error).message);
      throw err;
    }
  }

  /**
   * An operator's forced refresh (admin API): joins the one running, else refreshes now whatever the
   * expiry and the back-off (through the cluster's lock with a shared store). A dead login is refused.
   * Resolves with whether the token endpoint was called (false: newer tokens were adopted).
   */
  async refreshNow(): Promise<{ result: 'refreshed' | 'adopted'; expiresAt: number }> {
    if (this.deadReason !== undefined) throw this.lastFailure ?? new CodexRefreshError(true, this.deadReason);
    const start = this.generation;
    const refreshesBefore = this.refreshes;
    if (this.inflight === undefined) {
      this.inflightForced = true;
      this.inflight = this.refresh(true).finally(() => {
        this.inflight = undefined;
        this.inflightForced = false;
      });
    }
    await this.inflight;
    if (this.generation === start)
      throw new CodexRefreshError(false, `${this.who()}: the refresh brought no new token; try again`);
    return {
      result: this.refreshes !== refreshesBefore ? 'refreshed' : 'adopted',
      expiresAt: this.tokens.expiresAt,
    };
  }

  /**
   * An operator enables the account again: a dead login comes back only with a new one in its auth
   * file (the user logged in again). Throws, with a message safe to show, when there is none.
   */
  async revive(): Promise<void> {
    if (this.deadReason === undefined) return;
    const source = this.source;
    if (source.kind !== 'file')
      throw new CodexRefreshError(
        true,
        `${this.who()}: its login is dead (${this.deadReason}) and its tokens are inline: put new ones in the config and reload`,
      );
    const doc = await readAuthDoc(source.path);
    const onFile = doc === undefined ? undefined : tokensOfDoc(doc);
    if (onFile === undefined || onFile.refreshToken === this.tokens.refreshToken)
      throw new CodexRefreshError(
        true,
        `${this.who()}: its login is dead (${this.deadReason}) and its auth file holds no new login: log in again (codex login), then enable it`,
      );
    const dead = this.deadReason;
    this.takeLogin(source, doc!, onFile, 'codex login re-read from the auth file: account revived');
    // Every upstream on the account comes back, not only the one the operator named.
    this.opts.onRevived?.(dead);
    // The other processes knew it dead: the new login, in the shared record, brings it back there too.
    this.cluster?.offer();
  }

  /** Resolves when no refresh (and write-back) is running: for a clean shutdown. */
  async idle(): Promise<void> {
    await this.inflight?.catch(() => undefined);
  }

  private async refresh(forced = false): Promise<void> {
    // The generation the refresh is for: tokens adopted from here on may make it unnecessary.
    const start = this.generation;
    // Newer tokens in the file answer an operator's forced refresh too.
    if ((await this.adoptFromFile()) || (forced && this.generation !== start)) return;
    await (this.cluster === undefined ? this.refreshAlone() : this.cluster.refresh(start));
  }

  /** The refresh in this process alone: no shared store, or the store is unreachable. */
  async refreshAlone(): Promise<void> {
    let fresh;
    try {
      fresh = await this.requestRefresh();
    } catch (err) {
      const f = err as RefreshFailure;
      // Codex CLI may have refreshed the same login at the same moment: its tokens are the live ones.
      if (f.terminal && (await this.adoptFromFile())) return;
      throw f.terminal ? this.die(f) : this.backOff(f);
    }
    this.applyRefreshed(fresh, 0);
    await this.writeBack();
  }

  /** One call to the token endpoint with the current refresh token; it fails with a RefreshFailure. */
  async requestRefresh(): Promise<RefreshedTokens> {
    try {
      return await requestTokenRefresh({
        tokenUrl: this.opts.tokenUrl,
        clientId: this.opts.clientId,
        refreshToken: this.tokens.refreshToken,
        userAgent: this.opts.userAgent,
      });
    } catch (err) {
      throw err instanceof RefreshFailure
        ? err
        : new RefreshFailure(false, 'error', (err as Error).message ?? String(err));
    }
  }

  /** Takes the endpoint's answer as the tokens; `fence` is the shared lock's that covered the refresh. */
  applyRefreshed(fresh: RefreshedTokens, fence: number): void {
    this.tokens = {
      accessToken: fresh.accessToken,
      refreshToken: fresh.refreshToken ?? this.tokens.refreshToken,
      idToken: fresh.idToken ?? this.tokens.idToken,
      accountId: this.tokens.accountId,
      expiresAt: fresh.expiresAt,
    };
    this.refreshes++;
    this.renewed(fence);
    this.opts.onRefresh?.('ok');
    this.opts.log.info(
      { upstreams: this.upstreams, expiresAt: new Date(fresh.expiresAt).toISOString() },
      'codex access token refreshed',
    );
  }

  /** Newer tokens another process refreshed (read from the shared store). */
  adopt(tokens: CodexTokens, fence: number): void {
    this.tokens = tokens;
    this.renewed(fence);
    // A login newer than the one that died: an operator brought the account back in another process.
    const dead = this.deadReason;
    if (dead !== undefined) {
      this.deadReason = undefined;
      this.opts.log.info({ upstreams: this.upstreams }, 'codex login revived in another process');
      this.opts.onRevived?.(dead);
    }
    this.opts.log.info(
      { upstreams: this.upstreams, expiresAt: new Date(tokens.expiresAt).toISOString() },
      'codex tokens adopted from the shared store (refreshed by another process)',
    );
  }

  /** The refresh failed for good: the login is dead. Returns the error requests get from now on. */
  die(f: RefreshFailure): CodexRefreshError {
    this.deadReason = `refresh failed: ${f.code}`;
    this.lastFailure = new CodexRefreshError(
      true,
      `${this.who()}: token refresh failed (${f.message}); the account is disabled until it logs in again (codex login) and is enabled (admin API) or tapgate restarts`,
    );
    this.opts.onRefresh?.('failed');
    this.opts.log.warn(this.failureFields(f), 'codex token refresh failed for good: upstream disabled');
    this.opts.onDead(this.deadReason);
    return this.lastFailure;
  }

  /** Another process's refresh failed for good (its reason, e.g. `refresh failed: invalid_grant`). */
  diedElsewhere(reason: string): CodexRefreshError {
    if (this.deadReason !== undefined) return this.lastFailure!;
    this.deadReason = reason;
    this.lastFailure = new CodexRefreshError(
      true,
      `${this.who()}: token refresh failed in another process (${reason}); the account is disabled until it logs in again (codex login) and is enabled (admin API) or tapgate restarts`,
    );
    this.opts.log.warn(
      { upstreams: this.upstreams, reason },
      'codex token refresh failed for good in another process: upstream disabled',
    );
    this.opts.onDead(reason);
    return this.lastFailure;
  }

  /** A transient failure: no new attempt from this process within the back-off. */
  backOff(f: RefreshFailure): CodexRefreshError {
    this.retryAt = Date.now() + this.opts.retryBackoffMs;
    this.lastFailure = new CodexRefreshError(
      false,
      `${this.who()}: token refresh failed (${f.message}); try again shortly`,
    );
    this.opts.onRefresh?.('retry');
    this.opts.log.warn(this.failureFields(f), 'codex token refresh failed; will retry');
    return this.lastFailure;
  }

  private renewed(fence: number): void {
    this.generation++;
    this.fence = fence;
    this.retryAt = 0;
    this.lastFailure = undefined;
  }

  private who(): string {
    return `codex upstream ${this.upstreams.join(', ')}`;
  }

  private failureFields(f: RefreshFailure): Record<string, unknown> {
    return { upstreams: this.upstreams, code: f.code, status: f.status, detail: f.message };
  }

  /** A new login read from the auth file replaces the held one, dead or not. */
  private takeLogin(
    source: FileSource,
    doc: Record<string, unknown>,
    tokens: CodexTokens,
    message: string,
  ): void {
    this.tokens = tokens;
    source.doc = doc;
    this.deadReason = undefined;
    this.renewed(0);
    this.opts.log.info({ upstreams: this.upstreams }, message);
  }

  /**
   * Another program (Codex CLI itself) may have refreshed the same login meanwhile; its refresh
   * token is then the only live one. Adopt the file's tokens when they are newer and for the same
   * account; returns true when that made a refresh unnecessary.
   */
  async adoptFromFile(): Promise<boolean> {
    const source = this.source;
    if (source.kind !== 'file') return false;
    const doc = await readAuthDoc(source.path);
    const onFile = doc === undefined ? undefined : tokensOfDoc(doc);
    if (
      onFile === undefined ||
      onFile.accountId !== this.tokens.accountId ||
      onFile.refreshToken === this.tokens.refreshToken ||
      onFile.expiresAt <= this.tokens.expiresAt
    )
      return false;
    this.tokens = onFile;
    this.renewed(0);
    source.doc = doc!;
    this.opts.log.info(
      { upstreams: this.upstreams },
      'codex tokens adopted from the auth file (refreshed elsewhere)',
    );
    return !this.due();
  }

  /**
   * A config reload: the auth file may hold a new login (`codex login` run again). Its tokens are
   * taken when they are not the ones held and expire later, or when this login is dead. Only reads:
   * a running refresh (which may be writing the file) is waited for, and one started meanwhile
   * wins. Returns true when the file's tokens were taken.
   */
  async reloadFromFile(): Promise<boolean> {
    const source = this.source;
    if (source.kind !== 'file') return false;
    await this.idle();
    const doc = await readAuthDoc(source.path);
    const onFile = doc === undefined ? undefined : tokensOfDoc(doc);
    if (onFile === undefined || this.inflight !== undefined) return false;
    const held = this.tokens;
    if (onFile.accessToken === held.accessToken && onFile.refreshToken === held.refreshToken) return false;
    const dead = this.deadReason;
    if (dead === undefined && onFile.expiresAt <= held.expiresAt) return false;
    this.takeLogin(source, doc!, onFile, 'codex tokens re-read from the auth file (a new login)');
    if (dead !== undefined) {
      // As an operator's enable would: what the death disabled comes back, here and in the other processes.
      this.opts.onRevived?.(dead);
      this.cluster?.offer();
    }
    return true;
  }

  /** Writes the tokens back to the auth file (inline tokens stay in memory). */
  async writeBack(): Promise<void> {
    const source = this.source;
    if (source.kind !== 'file') return;
    try {
      const written = await writeBackTokens(source.path, source.doc, this.tokens);
      if (written === undefined) {
        this.opts.log.warn(
          { upstreams: this.upstreams, file: source.path },
          'auth file now holds another account: refreshed tokens kept in memory only',
        );
      } else {
        source.doc = written;
      }
    } catch (err) {
      // The new tokens stay in memory; only a restart would need the file.
      const code = (err as NodeJS.ErrnoException).code;
      this.opts.log.warn(
        { upstreams: this.upstreams, file: source.path, code },
        'could not write refreshed tokens back to the auth file',
      );
    }
  }
}
