/**
 * tapgate's built-in plugins, enabled by name: the registry the composition root (the CLI, the tests,
 * the demo) hands the kernel's loader, which imports no plugin itself. Imported statically: a dynamic import() could load a second
 * copy of the core under another module loader, and `instanceof` on errors would then fail.
 */
import CodexUpstreamPlugin from '../plugins/codex-upstream/index.js';
import DashboardPlugin from '../plugins/dashboard/index.js';
import ErrorCodesPlugin from '../plugins/error-codes/index.js';
import OpenAIUpstreamPlugin from '../plugins/openai-upstream/index.js';
import RequestIdPlugin from '../plugins/request-id/index.js';
import ResponsesRoutesPlugin from '../plugins/responses-routes/index.js';
import type { PluginRegistry } from '../core/loader/plugins.js';

export const BUILTINS: PluginRegistry = {
  plugins: {
    'responses-routes': ResponsesRoutesPlugin,
    'request-id': RequestIdPlugin,
    'error-codes': ErrorCodesPlugin,
    'openai-upstream': OpenAIUpstreamPlugin,
    'codex-upstream': CodexUpstreamPlugin,
    dashboard: DashboardPlugin,
  },
  // Upstream types and the built-in plugin that provides each: enabled automatically when used.
  upstreamTypeProviders: {
    openai: 'openai-upstream',
    codex: 'codex-upstream',
  },
};
