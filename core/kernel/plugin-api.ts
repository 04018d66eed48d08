/** What a plugin is: a class with `static meta` and `apply(gateway)`, and what `apply` is given. */
import type { GatewayConfig } from '../config/config-schema.js';
import type { Logger } from '../observe/logger.js';
import type { Secrets } from '../observe/secrets.js';
import type { SelectionPolicyRegistry } from '../pool/policies.js';
import type { UpstreamPool } from '../pool/pool.js';
import type { UpstreamTypeRegistry } from '../pool/upstream.js';
import type { GatewayHooks } from './hooks.js';

/**
 * What a plugin's `apply` gets: the gateway's parts a plugin works with, and nothing that runs it
 * (no HTTP server, no container, no `close()`).
 */
export interface PluginContext {
  readonly hooks: GatewayHooks;
  readonly logger: Logger;
  readonly config: Readonly<GatewayConfig>;
  /** Every secret the gateway knows: scrub free text with it; `add` a credential of the plugin's own. */
  readonly secrets: Secrets;
  /** Where a plugin registers the upstream `type`s it provides. */
  readonly upstreamTypes: UpstreamTypeRegistry;
  /** Where a plugin registers a selection policy, for `pool.strategy` to name. */
  readonly selectionPolicies: SelectionPolicyRegistry;
  /** The upstream pool. It is built after every plugin's apply(): read it at request time, or keep it at `ready`. */
  readonly pool: UpstreamPool;
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
}

export interface TapgatePlugin {
  /** Taps hooks and registers upstream types. Runs once, at boot. */
  apply(gateway: PluginContext): void | Promise<void>;
  /** Releases what apply() acquired; runs on shutdown, and after a failed boot. */
  close?(): void | Promise<void>;
}

export interface PluginClass {
  // Plugin constructors take injected parameters (or the options, for plain JS plugins).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  new (...args: any[]): TapgatePlugin;
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
