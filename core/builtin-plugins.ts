/** Built-in plugins, loaded by name. Imported lazily so a disabled plugin costs nothing. */
import type { PluginClass } from './plugin-api.js';

type Loader = () => Promise<PluginClass>;

export const BUILTIN_PLUGINS: Readonly<Record<string, Loader>> = {
  'responses-routes': async () => (await import('../plugins/responses-routes/index.js')).default,
  'request-id': async () => (await import('../plugins/request-id/index.js')).default,
  'error-codes': async () => (await import('../plugins/error-codes/index.js')).default,
  'openai-upstream': async () => (await import('../plugins/openai-upstream/index.js')).default,
};

/** Upstream types and the built-in plugin that provides each: enabled automatically when used. */
export const UPSTREAM_TYPE_PROVIDERS: Readonly<Record<string, string>> = {
  openai: 'openai-upstream',
};
