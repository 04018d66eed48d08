/** Gateway YAML with codex upstreams (and optionally others), the default plugins and one client key. */
import YAML from 'yaml';

export function codexGatewayConfig(
  upstreams: Record<string, unknown>[],
  opts: { proxy?: Record<string, unknown>; plugins?: unknown[] } = {},
): string {
  return YAML.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}' }] },
    ...(opts.proxy === undefined ? {} : { proxy: opts.proxy }),
    log: { level: 'debug' },
    upstreams,
    plugins: opts.plugins ?? ['responses-routes', 'request-id', 'error-codes'],
  });
}
