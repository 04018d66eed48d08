/** What a plugin is: a class with `static meta` and `apply(gateway)`. */
import type { Gateway } from './gateway.js';

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
  apply(gateway: Gateway): void | Promise<void>;
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
