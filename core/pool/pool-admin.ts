/**
 * Operator actions on the pool, by upstream name: list, enable, disable, clear cooldowns, force a
 * token refresh. What an admin API calls; it holds no state, and looks the upstream up at call time
 * (the pool's list may change on a config reload). Nothing it returns holds a secret.
 */
import { GatewayError } from '../kernel/errors.js';
import type { UpstreamPool } from './pool.js';
import type { CooldownKind } from './pool-state.js';
import type { UpstreamQuota } from './quota.js';
import type { RefreshOutcome, Upstream, UpstreamTypeRegistry } from './upstream.js';

/** One upstream as an operator sees it: no key, no token, no settings. */
export interface AdminUpstreamView {
  name: string;
  type: string;
  state: 'ok' | 'cooling' | 'disabled';
  disabledReason: string | null;
  /** Cooldowns in force; `model` null is the whole account's. */
  cooldowns: { model: string | null; until: number; kind: CooldownKind; reason: string }[];
  inFlight: number;
  /** 0: no limit. */
  maxConcurrency: number;
  quota: UpstreamQuota | null;
  /** Its type can force a token refresh. */
  refreshable: boolean;
}

/** A refused operator action; `errorCode` is the OpenAI-shaped body's `code`. */
export class PoolAdminError extends GatewayError {
  constructor(status: 404 | 409 | 502, errorCode: string, message: string, cause?: unknown) {
    super('POOL_ADMIN', status, status === 502 ? 'server_error' : 'invalid_request_error', message, {
      errorCode,
      cause,
    });
  }
}

export class PoolAdmin {
  constructor(
    /** Read at every call: the pool is built after plugins apply, and may be rebuilt. */
    private readonly pool: () => UpstreamPool,
    private readonly types: UpstreamTypeRegistry,
  ) {}

  list(now = Date.now()): AdminUpstreamView[] {
    const pool = this.pool();
    return pool.upstreams.map((u) => this.view(pool, u, now));
  }

  /** One upstream's view; 404 for an unknown name. */
  get(name: string, now = Date.now()): AdminUpstreamView {
    const pool = this.pool();
    return this.view(pool, this.find(pool, name), now);
  }

  /**
   * Lets the upstream serve again: its type resets what it holds (a dead login re-read from disk)
   * and its own check must pass. 409 when it still cannot serve.
   */
  async enable(name: string): Promise<AdminUpstreamView> {
    const pool = this.pool();
    const u = this.find(pool, name);
    const def = this.types.get(u.type);
    try {
      await def?.enable?.(u);
    } catch (err) {
      throw new PoolAdminError(409, 'upstream_cannot_serve', messageOf(err), err);
    }
    const reason = def?.check?.(u);
    if (reason !== undefined)
      throw new PoolAdminError(409, 'upstream_cannot_serve', `upstream ${u.name} cannot serve: ${reason}`);
    pool.state.enable(u.name);
    return this.view(pool, u, Date.now());
  }

  /** Takes the upstream out of rotation (every process sharing the state); its sessions move. */
  disable(name: string, reason: string): AdminUpstreamView {
    const pool = this.pool();
    const u = this.find(pool, name);
    pool.state.disable(u.name, reason);
    pool.state.unbindUpstream(u.name);
    return this.view(pool, u, Date.now());
  }

  /** Ends every cooldown of the upstream, the account's and every model's, shared ones included. */
  clearCooldowns(name: string): AdminUpstreamView {
    const pool = this.pool();
    const u = this.find(pool, name);
    const state = pool.state;
    if (state.clearCooldowns !== undefined) state.clearCooldowns(u.name);
    else
      for (const c of state.view(u.name, Date.now()).cooldowns)
        state.clearCooldown(u.name, c.model ?? undefined);
    // A freed upstream may take the requests waiting for a slot.
    pool.queue.notify();
    return this.view(pool, u, Date.now());
  }

  /** A new token now, through the type (single-flight, cluster-wide where the type shares tokens). */
  async refresh(name: string): Promise<RefreshOutcome> {
    const u = this.find(this.pool(), name);
    const refresh = this.types.get(u.type)?.refresh;
    if (refresh === undefined)
      throw new PoolAdminError(
        409,
        'refresh_not_supported',
        `upstream ${u.name} (type ${u.type}) has no token to refresh`,
      );
    try {
      return await refresh(u);
    } catch (err) {
      throw new PoolAdminError(502, 'refresh_failed', messageOf(err), err);
    }
  }

  private find(pool: UpstreamPool, name: string): Upstream {
    const u = pool.get(name);
    if (u === undefined)
      throw new PoolAdminError(
        404,
        'upstream_not_found',
        `No upstream is named ${JSON.stringify(name.slice(0, 64))}`,
      );
    return u;
  }

  private view(pool: UpstreamPool, u: Upstream, now: number): AdminUpstreamView {
    const v = pool.state.view(u.name, now);
    const disabled = v.disabled ?? null;
    return {
      name: u.name,
      type: u.type,
      state: disabled !== null ? 'disabled' : v.cooldowns.length > 0 ? 'cooling' : 'ok',
      disabledReason: disabled,
      cooldowns: v.cooldowns.map((c) => ({ model: c.model, until: c.until, kind: c.kind, reason: c.reason })),
      inFlight: v.inFlight,
      maxConcurrency: u.maxConcurrency,
      quota: v.quota ?? null,
      refreshable: this.types.get(u.type)?.refresh !== undefined,
    };
  }
}

function messageOf(err: unknown): string {
  if (err instanceof GatewayError || err instanceof Error) return err.message;
  return String(err);
}
