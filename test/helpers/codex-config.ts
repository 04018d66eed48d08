/** Gateway YAML with codex upstreams (and optionally others), the default plugins and one client key. */
import { gatewayConfig } from './proxy-config.js';

export function codexGatewayConfig(
  upstreams: Record<string, unknown>[],
  opts: { proxy?: Record<string, unknown>; plugins?: unknown[] } = {},
): string {
  return gatewayConfig({ proxy: opts.proxy, log: { level: 'debug' }, upstreams, plugins: opts.plugins });
}
