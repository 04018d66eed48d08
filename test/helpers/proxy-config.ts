/** Builds gateway YAML for proxy tests: any number of upstreams, plus server/proxy overrides. */
import YAML from 'yaml';

export interface UpstreamSpec {
  /** The upstream server's origin, e.g. http://127.0.0.1:1234. */
  url: string;
  name?: string;
  /** Appended to `url` to form baseUrl (default `/v1`). */
  basePath?: string;
  apiKey?: string;
  priority?: number;
  timeouts?: { connect?: string; firstByte?: string; idle?: string; total?: string };
}

export interface ProxyConfigOptions {
  server?: Record<string, unknown>;
  proxy?: Record<string, unknown>;
}

/** Upstream API key used when a spec names none; `upstreamKey(name)` gives it. */
export const upstreamKey = (name: string): string => `sk-upstream-${name}-secret`;

export function proxyConfig(upstreams: (string | UpstreamSpec)[], opts: ProxyConfigOptions = {}): string {
  const config = {
    server: { host: '127.0.0.1', port: 0, ...opts.server },
    auth: { keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}' }] },
    ...(opts.proxy === undefined ? {} : { proxy: opts.proxy }),
    upstreams: upstreams.map((u, i) => {
      const spec: UpstreamSpec = typeof u === 'string' ? { url: u } : u;
      const name = spec.name ?? `up${i + 1}`;
      return {
        name,
        type: 'openai',
        baseUrl: spec.url + (spec.basePath ?? '/v1'),
        apiKey: spec.apiKey ?? upstreamKey(name),
        ...(spec.priority === undefined ? {} : { priority: spec.priority }),
        ...(spec.timeouts === undefined ? {} : { timeouts: spec.timeouts }),
      };
    }),
    plugins: ['responses-routes', 'request-id', 'error-codes'],
  };
  return YAML.stringify(config);
}
