/**
 * Gateway YAML for tests. `gatewayConfig` is the one base: every helper's builder (proxyConfig here,
 * basicConfig, poolConfig, dashboardConfig, codexGatewayConfig) fills it in, so the common parts
 * (loopback listener on port 0, the test client key, the default plugins) are written once.
 */
import YAML from 'yaml';

/** The plugins a test gateway runs unless it says otherwise. */
export const DEFAULT_PLUGINS: readonly unknown[] = ['responses-routes', 'request-id', 'error-codes'];

/** The one client key tests send (`CLIENT_KEY`, via the TAPGATE_TEST_KEY variable startGateway sets). */
export const TEST_CLIENT_KEYS: readonly { name: string; key: string }[] = [
  { name: 'tester', key: '${TAPGATE_TEST_KEY}' },
];

export interface GatewayConfigOptions {
  /** Merged over `{ host: 127.0.0.1, port: 0 }`. */
  server?: Record<string, unknown>;
  /** Client keys (default TEST_CLIENT_KEYS). */
  keys?: readonly { name: string; key: string }[];
  /** Other `auth` keys, e.g. `bruteForce`. */
  auth?: Record<string, unknown>;
  proxy?: Record<string, unknown>;
  pool?: Record<string, unknown>;
  log?: Record<string, unknown>;
  /** The `state` section, e.g. `{ store: 'redis', url }`. */
  state?: Record<string, unknown>;
  /**
   * The `usage` section. Off unless a test asks (with a temp `path`): a test gateway must not write
   * a database into the repository.
   */
  usage?: Record<string, unknown>;
  /**
   * The `metrics` section, when a test asks (with `listen: 127.0.0.1:0`). Without it startGateway
   * turns metrics off: test gateways must not all bind the default 127.0.0.1:9464.
   */
  metrics?: Record<string, unknown>;
  /** Upstreams as config.yaml has them. */
  upstreams: readonly Record<string, unknown>[];
  /** Default DEFAULT_PLUGINS. */
  plugins?: readonly unknown[];
}

/** The base builder: a gateway config as YAML text; absent sections are left out. */
export function gatewayConfig(o: GatewayConfigOptions): string {
  return YAML.stringify({
    server: { host: '127.0.0.1', port: 0, ...o.server },
    auth: { keys: o.keys ?? TEST_CLIENT_KEYS, ...o.auth },
    ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
    ...(o.pool === undefined ? {} : { pool: o.pool }),
    ...(o.log === undefined ? {} : { log: o.log }),
    ...(o.state === undefined ? {} : { state: o.state }),
    usage: o.usage ?? { enabled: false },
    upstreams: o.upstreams,
    plugins: o.plugins ?? DEFAULT_PLUGINS,
    // Last, and only when asked: the line numbers tests expect in config errors stay as they were
    // (startGateway turns metrics off for a config without the section).
    ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
  });
}

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

/** Any number of openai upstreams (named up1, up2… unless named), plus server/proxy overrides. */
export function proxyConfig(upstreams: (string | UpstreamSpec)[], opts: ProxyConfigOptions = {}): string {
  return gatewayConfig({
    server: opts.server,
    proxy: opts.proxy,
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
  });
}
