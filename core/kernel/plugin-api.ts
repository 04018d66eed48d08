/**
 * The plugin contract: a class with `static meta` and `apply(context)`, constructed as `new Cls(options)`
 * with its validated options; `definePlugin()` builds one from a `setup` function. Nothing else: no
 * decorators, no container, so a plugin in plain JS or TS outside the repository needs no build setup.
 */
import type { GatewayConfig } from '../config/config-schema.js';
import type { PluginMetrics } from '../metrics/gateway-metrics.js';
import type { Logger } from '../observe/logger.js';
import type { Secrets } from '../observe/secrets.js';
import type { SelectionPolicyRegistry } from '../pool/policies.js';
import type { UpstreamPool } from '../pool/pool.js';
import type { UpstreamTypeRegistry } from '../pool/upstream.js';
import type { ClusterStore } from '../state/cluster-store.js';
import type { UsageReader } from '../usage/usage-types.js';
import type { GatewayHooks } from './hooks.js';
import type { ExchangeSink, InternalExchange, InternalRequestInit } from '../proxy/internal-exchange.js';
import type { Stage } from './stages.js';

/**
 * The plugin API this core provides. A plugin whose `meta.apiVersion` is higher fails at load; a plugin
 * without one is taken as version 1. Raised when the contract changes in a way old plugins would misread.
 */
export const PLUGIN_API_VERSION = 1;

/**
 * What a plugin's `apply` gets: the gateway's parts a plugin works with, and nothing that runs it
 * (no HTTP server, no container, no `close()`).
 */
export interface PluginContext {
  readonly hooks: GatewayHooks;
  readonly logger: Logger;
  /** The config in force: a reload replaces it, so read it when needed rather than keep it. */
  readonly config: Readonly<GatewayConfig>;
  /** Every secret the gateway knows: scrub free text with it; `add` a credential of the plugin's own. */
  readonly secrets: Secrets;
  /** Where a plugin registers the upstream `type`s it provides. */
  readonly upstreamTypes: UpstreamTypeRegistry;
  /** Where a plugin registers a selection policy, for `pool.strategy` to name. */
  readonly selectionPolicies: SelectionPolicyRegistry;
  /** The upstream pool. It is built after every plugin's apply(): read it at request time, or keep it at `ready`. */
  readonly pool: UpstreamPool;
  /**
   * Locks, claims, values and channels shared with every process on the same `state` store (this
   * process alone with `store: memory`): what a plugin coordinates across workers and instances.
   */
  readonly cluster: ClusterStore;
  /** The usage records of every process writing the same store (`usage` section); undefined when off. */
  readonly usage: UsageReader | undefined;
  /** Prometheus: the registry for a plugin's own series, and counts the core defines (token refreshes). */
  readonly metrics: PluginMetrics;
  /** The tap stages (`Stage.DEFAULT`…), for a plugin that cannot import the package. */
  readonly Stage: typeof Stage;
  /**
   * Runs a request that arrived another way than its own HTTP request (a WebSocket turn) through
   * the pipeline, as one: every hook, the client-key check and the limits apply. What the pipeline
   * writes goes to `sink`. For request time only (the pipeline exists once the gateway listens).
   */
  dispatch(request: InternalRequestInit, sink: ExchangeSink): InternalExchange;
}

/** Anything with zod's `safeParse` validates plugin options (zod itself, or a compatible schema). */
export interface OptionsSchema<T = unknown> {
  safeParse(value: unknown):
    | { success: true; data: T }
    | {
        success: false;
        error: {
          issues: readonly { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[];
        };
      };
}

export interface PluginMeta {
  /** Unique name; other plugins name it in `dependsOn`. */
  name: string;
  /** Plugins that must be enabled too; they are applied first. */
  dependsOn?: readonly string[];
  /** Schema of `options` in config.yaml. Without one, the plugin accepts no options. */
  options?: OptionsSchema;
  /** The plugin API it is written for (`PLUGIN_API_VERSION`); 1 when absent. */
  apiVersion?: number;
}

export interface TapgatePlugin {
  /** Taps hooks and registers upstream types. Runs once, at boot. */
  apply(gateway: PluginContext): void | Promise<void>;
  /** Releases what apply() acquired; runs on shutdown, and after a failed boot. */
  close?(): void | Promise<void>;
  /**
   * A config reload changed this plugin's options (already validated by `meta.options`): apply them
   * to new requests. Optional: without it, a reload that changes the plugin's options is refused
   * (restart to apply), and the boot log names the plugin. Called right after the gateway swapped
   * its config; it should not fail (validate in the schema), and a request already running may
   * see either options. `gateway.config` is then the new config.
   */
  reload?(options: unknown): void | Promise<void>;
  /**
   * Why these new options cannot apply without a restart (a changed listen path, say), or undefined
   * when reload() can apply them. Asked while a reload is validated, before anything changes: a
   * reason refuses the whole reload, with the plugin's name and the options' line.
   */
  cannotReload?(options: unknown): string | undefined;
}

export interface PluginClass {
  // Constructed as `new Cls(options)`; a class may type its options as it likes.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  new (options: any): TapgatePlugin;
  readonly meta: PluginMeta;
}

export function isPluginClass(value: unknown): value is PluginClass {
  if (typeof value !== 'function') return false;
  const meta = (value as { meta?: unknown }).meta as PluginMeta | undefined;
  return (
    typeof meta === 'object' &&
    meta !== null &&
    typeof meta.name === 'string' &&
    typeof value.prototype?.apply === 'function'
  );
}

/** What `definePlugin()` takes: the meta fields, and `setup` in place of a class. */
export interface PluginDefinition<O> extends PluginMeta {
  options?: OptionsSchema<O>;
  /** Runs as `apply()`: taps hooks. May return a cleanup function, run as `close()`. */
  setup(context: PluginContext, options: O): void | Cleanup | Promise<void | Cleanup>;
  /** Optional: applies new options on a config reload (TapgatePlugin.reload); without it they need a restart. */
  reload?(options: O): void | Promise<void>;
}
type Cleanup = () => void | Promise<void>;

/**
 * A plugin from one function, in the spirit of fastify-plugin: returns a plugin class, so it is
 * enabled, ordered and closed like any other. `options` are the validated options (`{}` without a schema).
 */
export function definePlugin<O = Record<string, never>>(definition: PluginDefinition<O>): PluginClass {
  const { setup, reload, ...meta } = definition;
  if (typeof meta.name !== 'string' || meta.name === '')
    throw new TypeError('definePlugin: name is required');
  if (typeof setup !== 'function')
    throw new TypeError(`definePlugin "${meta.name}": setup must be a function`);
  const Defined = class implements TapgatePlugin {
    static readonly meta: PluginMeta = Object.freeze(meta);
    private cleanup: Cleanup | undefined;
    constructor(private readonly options: O) {}
    apply(context: PluginContext): void | Promise<void> {
      const kept = (r: void | Cleanup) => {
        if (typeof r === 'function') this.cleanup = r;
      };
      const result = setup(context, this.options);
      return result instanceof Promise ? result.then(kept) : kept(result);
    }
    close(): void | Promise<void> {
      return this.cleanup?.();
    }
  };
  // Only a definition with reload() makes a reloadable plugin: the gateway checks for the method.
  if (typeof reload === 'function')
    Object.defineProperty(Defined.prototype, 'reload', {
      value: (options: O) => reload(options),
      configurable: true,
    });
  // Stack traces and logs name the plugin, not "Defined".
  Object.defineProperty(Defined, 'name', { value: meta.name });
  return Defined;
}
