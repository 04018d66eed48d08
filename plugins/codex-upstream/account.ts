/**
 * One Codex account's live credentials: the tokens, their generation, and the single-flight
 * refresh. Every request that needs a refresh while one is running waits for that one, so the
 * refresh token is spent exactly once (two concurrent refreshes burn it: `refresh_token_reused`).
 * A request whose token still works does not wait for a refresh ahead of expiry.
 */
import type { Logger } from '../../core/index.js';
import { readAuthDoc, tokensOfDoc, writeBackTokens, type CodexTokens } from './credentials.js';
import { CodexRefreshError } from './errors.js';
import { RefreshFailure, requestTokenRefresh } from './refresh.js';

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
}

export class CodexAccount {
  tokens: CodexTokens;
  /** Bumped on every new access token; a 401 on generation g forces a refresh only while g is current. */
  generation = 0;
  /** Names of the upstreams on this account (several may share one auth.json). */
  readonly upstreams: string[] = [];
  /** Set once a refresh failed terminally; no refresh is ever tried again. */
  deadReason: string | undefined;
  private inflight: Promise<void> | undefined;
  /** The running refresh was forced by a 401: the current token is suspect, so everyone waits for it. */
  private inflightForced = false;
  private lastFailure: CodexRefreshError | undefined;
  private retryAt = 0;

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

  /** Resolves when no refresh (and write-back) is running: for a clean shutdown. */
  async idle(): Promise<void> {
    await this.inflight?.catch(() => undefined);
  }

  private async refresh(): Promise<void> {
    const log = this.opts.log;
    const source = this.source;
    if (source.kind === 'file' && (await this.adoptFromFile(source))) return;
    let fresh;
    try {
      fresh = await requestTokenRefresh({
        tokenUrl: this.opts.tokenUrl,
        clientId: this.opts.clientId,
        refreshToken: this.tokens.refreshToken,
        userAgent: this.opts.userAgent,
      });
    } catch (err) {
      const f =
        err instanceof RefreshFailure
          ? err
          : new RefreshFailure(false, 'error', (err as Error).message ?? String(err));
      // Codex CLI may have refreshed the same login at the same moment: its tokens are the live ones.
      if (f.terminal && source.kind === 'file' && (await this.adoptFromFile(source))) return;
      const who = `codex upstream ${this.upstreams.join(', ')}`;
      const fields = { upstreams: this.upstreams, code: f.code, status: f.status, detail: f.message };
      if (f.terminal) {
        this.deadReason = `refresh failed: ${f.code}`;
        this.lastFailure = new CodexRefreshError(
          true,
          `${who}: token refresh failed (${f.message}); the account is disabled until it logs in again (codex login) and tapgate restarts`,
        );
        log.warn(fields, 'codex token refresh failed for good: upstream disabled');
        this.opts.onDead(this.deadReason);
      } else {
        this.retryAt = Date.now() + this.opts.retryBackoffMs;
        this.lastFailure = new CodexRefreshError(
          false,
          `${who}: token refresh failed (${f.message}); try again shortly`,
        );
        log.warn(fields, 'codex token refresh failed; will retry');
      }
      throw this.lastFailure;
    }
    this.tokens = {
      accessToken: fresh.accessToken,
      refreshToken: fresh.refreshToken ?? this.tokens.refreshToken,
      idToken: fresh.idToken ?? this.tokens.idToken,
      accountId: this.tokens.accountId,
      expiresAt: fresh.expiresAt,
    };
    this.generation++;
    this.retryAt = 0;
    this.lastFailure = undefined;
    log.info(
      { upstreams: this.upstreams, expiresAt: new Date(fresh.expiresAt).toISOString() },
      'codex access token refreshed',
    );
    if (source.kind === 'file') await this.writeBack(source);
  }

  /**
   * Another program (Codex CLI itself) may have refreshed the same login meanwhile; its refresh
   * token is then the only live one. Adopt the file's tokens when they are newer and for the same
   * account; returns true when that made a refresh unnecessary.
   */
  private async adoptFromFile(source: FileSource): Promise<boolean> {
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
    this.generation++;
    source.doc = doc!;
    this.opts.log.info(
      { upstreams: this.upstreams },
      'codex tokens adopted from the auth file (refreshed elsewhere)',
    );
    return !this.due();
  }

  private async writeBack(source: FileSource): Promise<void> {
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
