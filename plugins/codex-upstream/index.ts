/**
 * Upstream type `codex`: ChatGPT/Codex OAuth accounts on the Codex backend. Credentials come from
 * Codex CLI's auth.json (or inline tokens) and are refreshed single-flight (once for the whole
 * cluster with a shared state store), ahead of expiry and once after a 401; requests are shaped the
 * way the backend expects; SDK clients are spared the backend's non-standard events. The backend
 * only streams: a non-streaming client gets the Response object the Responses plugin builds from the
 * stream (the type is registered `streamsOnly`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import {
  Stage,
  UpstreamHttpError,
  type PluginContext,
  type OutgoingRequest,
  type RequestContext,
  type TapgatePlugin,
  type Upstream,
} from '../../core/index.js';
import { CodexAccount } from './account.js';
import { expandAuthFolder } from './auth-folder.js';
import { ClusterTokens } from './cluster-refresh.js';
import { CodexCredentialsError, expandHome, loadAuthFile, loadInlineTokens } from './credentials.js';
import { CodexRefreshError } from './errors.js';
import { NAME, peekState, requestState } from './request-state.js';
import { codexIdentity, codexUpstreamSchema, type CodexIdentity, type CodexSettings } from './schema.js';
import { codexStreamEvent } from './sdk-events.js';
import { normaliseBody, shapeHeaders } from './shape.js';
import { usageReply } from './usage-endpoint.js';
import { CODEX_USAGE, matchUsageRoute } from './usage-routes.js';
import { codexQuota, exhaustedWindowMs } from './usage-window.js';

export const CODEX_TYPE = 'codex';
/** After a transient refresh failure, the token endpoint is left alone at least this long. */
const MIN_REFRESH_BACKOFF_MS = 5000;

/** What `init` keeps per upstream (`upstream.state`). */
export interface CodexUpstreamState {
  account: CodexAccount;
  identity: CodexIdentity;
  pass: ReadonlySet<string>;
  removeParameters: readonly string[];
}

export default class CodexUpstreamPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: z.strictObject({}) };
  /** One account per auth file, however many upstreams name it: one refresh token, one refresher. */
  private readonly byFile = new Map<string, CodexAccount>();
  private readonly accounts = new Set<CodexAccount>();
  private gateway: PluginContext | undefined;
  /** With a shared store (`state.store: redis`): refreshes coordinated with the other processes. */
  private cluster: ClusterTokens | undefined;

  apply(gateway: PluginContext): void {
    this.gateway = gateway;
    const hooks = gateway.hooks;
    if (gateway.cluster.shared)
      this.cluster = new ClusterTokens(gateway.cluster, gateway.logger.child({ plugin: NAME }));
    gateway.upstreamTypes.register({
      type: CODEX_TYPE,
      schema: codexUpstreamSchema,
      // The backend answers every Responses call with a stream (prepare sets `stream: true`).
      streamsOnly: true,
      // `auth:` may name a folder or a glob: one upstream per auth file (auth-folder.ts).
      expand: expandAuthFolder,
      init: (upstream, context) => this.init(upstream, context.configDir),
      // Operators (admin API): a forced refresh, and a dead login brought back from its auth file.
      refresh: (upstream) => stateOf(upstream).account.refreshNow(),
      enable: (upstream) => stateOf(upstream).account.revive(),
      // A config reload: a new login on disk is taken; a removed upstream lets its account go.
      reload: (upstream) => this.reread(upstream),
      release: (upstream) => this.release(upstream),
      multiProcess:
        'a refresh token must be sent once per account, and only a shared store lets the processes agree on which one sends it',
    });

    // Codex's own limits endpoint (`/backend-api/wham/usage`, `/api/codex/usage`): answered from the
    // pool's accounts, after the core's client-key check (Stage.GUARD).
    hooks.matchRoute.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) =>
      matchUsageRoute(ctx.method, ctx.pathname),
    );
    hooks.request.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) =>
      ctx.route === CODEX_USAGE ? usageReply(gateway.pool, accountOf) : undefined,
    );

    hooks.prepareUpstreamRequest.tapPromise(
      { name: NAME, stage: Stage.DEFAULT },
      async (outgoing, ctx, upstream) =>
        upstream.type === CODEX_TYPE ? prepare(outgoing, ctx, upstream) : outgoing,
    );

    hooks.upstreamResponse.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, upstream, response) => {
      if (upstream.type !== CODEX_TYPE) return;
      this.reportQuota(upstream, response.headers);
      this.coolExhaustedWindow(ctx, upstream, response.headers);
    });

    // EARLY: before the Responses plugin's tap, which then still checks framing and terminal events.
    hooks.streamEvent.tap({ name: NAME, stage: Stage.EARLY }, (ev, ctx) => {
      if (ctx.upstream?.type !== CODEX_TYPE) return ev;
      const st = peekState(ctx);
      return st === undefined ? ev : codexStreamEvent(ev, st.codexClient);
    });

    hooks.classifyError.tap({ name: NAME, stage: Stage.DEFAULT }, (error, ctx) => {
      const upstream = ctx.upstream;
      if (upstream?.type !== CODEX_TYPE) return undefined;
      // A refresh that failed in prepare: this account cannot take the request, another may. Its
      // cooldown was set when the refresh failed (terminal: every upstream on the account is disabled).
      if (error instanceof CodexRefreshError) return { retry: 'switch' };
      if (!(error instanceof UpstreamHttpError) || error.status !== 401) return undefined;
      const st = requestState(ctx);
      if (!st.refreshed.has(upstream.name)) {
        // Refresh once and retry the same account before failing over: `same` pins the next
        // attempt to this upstream, and `refreshNext` makes its prepare force the refresh.
        st.refreshed.add(upstream.name);
        st.refreshNext = upstream.name;
        return { retry: 'same' };
      }
      return {
        retry: 'switch',
        cooldownMs: gateway.config.proxy.transientCooldown,
        cooldownScope: 'account',
        cooldownKind: 'transient',
      };
    });
  }

  /**
   * The usage-window headers come on successes too: a full window cools the whole account until it
   * resets, so later requests go elsewhere (this one is served).
   */
  private coolExhaustedWindow(ctx: RequestContext, upstream: Upstream, headers: IncomingHttpHeaders): void {
    if (
      headers['x-codex-primary-used-percent'] === undefined &&
      headers['x-codex-secondary-used-percent'] === undefined
    )
      return;
    const wait = exhaustedWindowMs(headers);
    if (wait === undefined) return;
    const reason = 'usage window exhausted (x-codex headers)';
    this.gateway!.pool.state.cool(upstream.name, undefined, Date.now() + wait, reason, 'rate_limit');
    ctx.log.info({ upstream: upstream.name, resetsInMs: wait }, 'usage window exhausted: account cooling');
  }

  /**
   * The usage windows, on every answer: the latest is the account's quota, for every upstream on the
   * account (the dashboard shows it, `most-headroom` picks by it). Malformed values are left out.
   */
  private reportQuota(upstream: Upstream, headers: IncomingHttpHeaders): void {
    const state = this.gateway!.pool.state;
    if (state.setQuota === undefined) return;
    const quota = codexQuota(headers, Date.now());
    if (quota === undefined) return;
    for (const name of stateOf(upstream).account.upstreams) state.setQuota(name, quota);
  }

  /** No options of its own (its upstreams' keys reload with the upstreams): nothing to apply. */
  reload(): void {}

  /** A config reload: a new login in the auth file is taken, and a dead account comes back. */
  private async reread(upstream: Upstream): Promise<void> {
    await stateOf(upstream).account.reloadFromFile();
  }

  /** The upstream left the pool and drained: the account goes with its last upstream. */
  private release(upstream: Upstream): void {
    const account = (upstream.state as CodexUpstreamState | undefined)?.account;
    if (account === undefined) return;
    const i = account.upstreams.indexOf(upstream.name);
    if (i >= 0) account.upstreams.splice(i, 1);
    if (account.upstreams.length > 0) return;
    if (account.source.kind === 'file' && this.byFile.get(account.source.path) === account)
      this.byFile.delete(account.source.path);
    if (account.cluster !== undefined) this.cluster?.detach(account.cluster);
    // A refresh still writing the file is waited for at close, like any other.
    void account.idle().then(() => this.accounts.delete(account));
  }

  /** A refresh that already spent the old refresh token must reach the auth file before exit. */
  async close(): Promise<void> {
    this.cluster?.close();
    await Promise.all([...this.accounts].map((a) => a.idle()));
  }

  private init(upstream: Upstream, configDir: string): CodexUpstreamState {
    const s = upstream.settings as CodexSettings;
    const at = `codex upstream "${upstream.name}"`;
    if ((s.auth === undefined) === (s.tokens === undefined))
      throw new CodexCredentialsError(
        `${at}: set exactly one of auth (the path of a Codex CLI auth.json) and tokens (inline tokens)`,
      );
    const identity = codexIdentity(s);
    if (typeof identity === 'string') throw new CodexCredentialsError(`${at}: ${identity}`);
    const gateway = this.gateway!;
    const log = gateway.logger.child({ plugin: NAME });
    const makeAccount = (tokens: CodexAccount['tokens'], source: CodexAccount['source']) => {
      const account: CodexAccount = new CodexAccount(tokens, source, {
        tokenUrl: s.tokenUrl,
        clientId: s.clientId,
        userAgent: identity.userAgent,
        refreshAheadMs: s.refreshAhead,
        retryBackoffMs: Math.max(MIN_REFRESH_BACKOFF_MS, gateway.config.proxy.transientCooldown),
        log,
        onDead: (reason) => {
          // This process's: the other processes learn the death from the shared token record (its
          // `dead`), which a new login outdates, so a restart after `codex login` starts clean.
          for (const name of account.upstreams) gateway.pool.state.disable(name, reason, 'process');
        },
        onRevived: (reason) => {
          // Only what the death disabled: an operator's own disable stays.
          const state = gateway.pool.state;
          for (const name of account.upstreams) if (state.disabled(name) === reason) state.enable(name);
        },
        // Counted on the account's first upstream: one count per call to the token endpoint.
        onRefresh: (result) => gateway.metrics.tokenRefreshed(account.upstreams[0] ?? upstream.name, result),
        onUnusable: (reason) => {
          const until = Date.now() + gateway.config.proxy.transientCooldown;
          for (const name of account.upstreams)
            gateway.pool.state.cool(name, undefined, until, reason, 'transient');
        },
      });
      this.accounts.add(account);
      return account;
    };
    let account: CodexAccount;
    if (s.auth !== undefined) {
      const path = expandHome(s.auth, configDir);
      const shared = this.byFile.get(path);
      if (shared !== undefined) {
        account = shared;
      } else {
        const file = loadAuthFile(upstream.name, path);
        account = makeAccount(file.tokens, { kind: 'file', path, doc: file.doc });
        this.byFile.set(path, account);
      }
    } else {
      account = makeAccount(loadInlineTokens(upstream.name, s.tokens!), { kind: 'inline' });
    }
    account.upstreams.push(upstream.name);
    // Shared under its first upstream's name: instances sharing the account must name it alike.
    if (account.upstreams.length === 1) account.cluster = this.cluster?.attach(upstream.name, account);
    log.info(
      {
        upstream: upstream.name,
        source: account.source.kind === 'file' ? account.source.path : 'inline tokens',
        accessTokenExpires: new Date(account.tokens.expiresAt).toISOString(),
      },
      'codex credentials loaded',
    );
    return {
      account,
      identity,
      pass: new Set(s.passHeaders),
      removeParameters: s.removeParameters,
    };
  }
}

function stateOf(upstream: Upstream): CodexUpstreamState {
  return upstream.state as CodexUpstreamState;
}

/** The account of a Codex upstream; undefined for any other. */
function accountOf(upstream: Upstream): CodexAccount | undefined {
  return upstream.type === CODEX_TYPE
    ? (upstream.state as CodexUpstreamState | undefined)?.account
    : undefined;
}

async function prepare(
  outgoing: OutgoingRequest,
  ctx: RequestContext,
  upstream: Upstream,
): Promise<OutgoingRequest> {
  const { account, identity, pass, removeParameters } = stateOf(upstream);
  const st = requestState(ctx);
  // After a 401 the retry is pinned to the same upstream; the check on the name keeps a forced
  // refresh off another account if the pin could not hold (the mark is spent either way).
  const force = st.refreshNext === upstream.name;
  st.refreshNext = undefined;
  // Refreshes when due (ahead of expiry) or forced. When the account cannot be used (expired or
  // rejected token, and no new one), this throws a CodexRefreshError: the core counts it as a failed
  // attempt, and the classifyError tap above fails over to another upstream.
  await account.ensure(force, st.sent.get(upstream.name));
  st.sent.set(upstream.name, account.generation);

  const kind = ctx.route?.kind;
  const compact = kind === 'responses.compact';
  const headers = shapeHeaders(outgoing.headers, {
    requestId: ctx.id,
    accessToken: account.tokens.accessToken,
    accountId: account.tokens.accountId,
    identity,
    pass,
    compact,
  });
  outgoing.headers = headers;
  // A body still encoded (zstd on Node 20) goes as sent; otherwise the parsed body is normalised.
  if (headers['content-encoding'] === undefined && (kind === 'responses' || compact)) {
    const source = Buffer.isBuffer(outgoing.body) ? ctx.json : outgoing.body;
    const shaped = source === undefined ? undefined : normaliseBody(source, compact, removeParameters);
    if (shaped !== undefined) outgoing.body = shaped;
  }
  return outgoing;
}
