/** One configured upstream account, and the registry of upstream types plugins provide. */
import type { z } from 'zod';
import { UpstreamConnections } from './upstream-connections.js';
import type { Timeouts, UpstreamBaseConfig } from '../config/config-schema.js';

/** What a plugin registers to provide an upstream `type`. */
export interface UpstreamTypeDefinition {
  type: string;
  /** Schema of the type's own keys; it must yield `baseUrl`. Base keys (name, models, …) are added by the core. */
  schema: z.ZodObject;
  /**
   * One config entry as several upstreams (an `auth:` folder, one account per file): the raw entries
   * to validate and build in its place, names included. Called on every build, so a reload sees files
   * added since. Throw UpstreamExpandError for a problem the user must fix: it becomes a config error
   * at the entry (and key) with its line.
   */
  expand?(
    value: Readonly<Record<string, unknown>>,
    context: UpstreamInitContext,
  ): Array<Record<string, unknown>>;
  /** Free-form per-upstream state the plugin keeps (credentials, token cache). */
  init?(upstream: Upstream, context: UpstreamInitContext): unknown;
  /** A reason the upstream cannot serve yet (e.g. no API key): it starts disabled, with that reason. */
  check?(upstream: Upstream): string | undefined;
  /**
   * The type's upstreams answer with an event stream even when the client did not ask for one: the
   * route's protocol plugin then builds the unary answer from it (the Responses plugin does).
   */
  streamsOnly?: boolean;
  /**
   * false: the type cannot serve Responses turns that arrive over a WebSocket (each is sent as an
   * HTTP request), so a pool of only such upstreams answers the upgrade with 426 and clients use HTTP.
   */
  websocket?: boolean;
  /**
   * Set when upstreams of this type cannot be served by several processes (`server.workers` > 1):
   * why not. The gateway then refuses such a config, naming `server.workers` and this reason.
   */
  multiProcess?: string;
  /**
   * An operator asked for a new token now (admin API). Without it the type has no token to refresh:
   * the request is refused. Rejects with an Error whose message is safe to show (no token in it).
   */
  refresh?(upstream: Upstream): Promise<RefreshOutcome>;
  /**
   * An operator enables the upstream (admin API): the type resets its own terminal state first (a
   * dead login re-read from disk, say). Rejects, with a message safe to show, when it still cannot serve.
   */
  enable?(upstream: Upstream): void | Promise<void>;
  /**
   * A config reload applied, for every upstream in the pool (kept or new): re-read what lives
   * outside config.yaml (an auth file a new login rewrote). Never write: a reload only reads.
   */
  reload?(upstream: Upstream): void | Promise<void>;
  /**
   * The upstream left the pool (removed or changed by a reload, after its in-flight attempts
   * finished; or built for a reload that was refused): release what `init` acquired for it.
   */
  release?(upstream: Upstream): void;
}

/** What a forced token refresh achieved. */
export interface RefreshOutcome {
  /** `refreshed`: the token endpoint issued new tokens; `adopted`: newer ones were found (file, other process). */
  result: 'refreshed' | 'adopted';
  /** When the new access token expires (epoch ms), if known. */
  expiresAt?: number;
}

export interface UpstreamInitContext {
  /** The config file's directory: relative paths in an upstream's keys resolve against it. */
  configDir: string;
}

/** A config entry that `expand` cannot turn into upstreams; `key` is the entry's key at fault. */
export class UpstreamExpandError extends Error {
  override name = 'UpstreamExpandError';
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

export class UpstreamTypeRegistry {
  private readonly types = new Map<string, UpstreamTypeDefinition>();
  register(def: UpstreamTypeDefinition): void {
    if (this.types.has(def.type))
      throw new Error(`upstream type "${def.type}" is already provided by another plugin`);
    this.types.set(def.type, def);
  }
  get(type: string): UpstreamTypeDefinition | undefined {
    return this.types.get(type);
  }
  names(): string[] {
    return [...this.types.keys()];
  }
}

export class Upstream {
  readonly name: string;
  readonly type: string;
  readonly baseUrl: URL;
  /** Base path without a trailing slash, e.g. `/v1`. */
  readonly basePath: string;
  /** `scheme://host:port`, once: compared with every outgoing URL. */
  readonly origin: string;
  readonly models: readonly string[];
  readonly maxConcurrency: number;
  readonly weight: number;
  readonly priority: number;
  readonly timeouts: Timeouts;
  /** The upstream's keep-alive connections (an undici pool): what attempts are sent on. */
  readonly connections: UpstreamConnections;
  /** The type's own validated keys (secrets included: never log this). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** State owned by the type's plugin. */
  state: unknown;

  constructor(
    base: UpstreamBaseConfig,
    settings: Record<string, unknown> & { baseUrl: string },
    timeouts: Timeouts,
  ) {
    this.name = base.name;
    this.type = base.type;
    this.baseUrl = new URL(settings.baseUrl);
    this.basePath = this.baseUrl.pathname.replace(/\/+$/, '');
    this.origin = this.baseUrl.origin;
    this.models = base.models;
    this.maxConcurrency = base.maxConcurrency;
    this.weight = base.weight;
    this.priority = base.priority;
    this.timeouts = { ...timeouts, ...base.timeouts };
    this.settings = settings;
    this.connections = new UpstreamConnections(this.origin, this.timeouts.connect);
  }

  serves(model: string | undefined): boolean {
    return this.models.length === 0 || (model !== undefined && this.models.includes(model));
  }

  /** Safe to log and to show on a dashboard: no secret. */
  describe(): { name: string; type: string; origin: string; models: readonly string[] } {
    return { name: this.name, type: this.type, origin: this.baseUrl.origin, models: this.models };
  }
}
