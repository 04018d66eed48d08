/**
 * The composition root. It builds, once at boot: the hooks, the core's own taps, the plugins
 * (each constructed with its validated options), the upstream pool, the transport and the HTTP server. Then it
 * seals the hooks, so nothing is created or tapped per request. `reload()` re-reads the config and
 * swaps what requests read (config, keys, upstreams, plugin options) in one step; the hooks and
 * plugins stay (core/reload/ holds its checks).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { DestinationStream } from 'pino';
import { AccessLog } from './observe/access-log.js';
import { ClientAuth, isLoopbackHost } from './guard/auth.js';
import { KeyLimits } from './limits/key-limits.js';
import { FailureThrottle } from './guard/auth-throttle.js';
import { loadConfigFile, type ConfigIssue, type ConfigSource, type LoadedConfig } from './config/config.js';
import type { GatewayConfig } from './config/config-schema.js';
import {
  authenticationError,
  browserRefusal,
  tapCore,
  throttledError,
  type CoreTaps,
} from './defaults/core-taps.js';
import { defaultMaxConnections, fdSoftLimit } from './guard/connection-limit.js';
import {
  openAIErrorBody,
  PermissionDeniedError,
  ShuttingDownError,
  type GatewayError,
} from './kernel/errors.js';
import { createHooks, sealHooks, type GatewayHooks } from './kernel/hooks.js';
import { createLogger, defaultLogDestination, type LogDestination, type Logger } from './observe/logger.js';
import { clientsMessage, clientUrls } from './observe/client-url.js';
import { Occasional } from './observe/occasional.js';
import { PluginApplyError } from './loader/plugin-errors.js';
import type { PluginContext } from './kernel/plugin-api.js';
import { Secrets } from './observe/secrets.js';
import { Stage } from './kernel/stages.js';
import {
  loadPlugins,
  resolvePlugins,
  type LoadedPlugin,
  type PluginRegistry,
  type ResolvedPlugin,
} from './loader/plugins.js';
import { Pipeline } from './proxy/pipeline.js';
import type { ExchangeSink, InternalRequestInit } from './proxy/internal-exchange.js';
import { SelectionPolicyRegistry } from './pool/policies.js';
import { UpstreamPool } from './pool/pool.js';
import type { PoolStateStore } from './pool/pool-state.js';
import { createStateStores, type StateStores } from './state/state-stores.js';
import { SlotQueue } from './pool/slot-queue.js';
import { Transport } from './proxy/transport.js';
import { UpstreamBuilder } from './pool/upstream-builder.js';
import { UpstreamTypeRegistry, type Upstream } from './pool/upstream.js';
import { namedChanges, refused, type ReloadResult } from './reload/reload-result.js';
import { restartIssues } from './reload/restart-keys.js';
import { changedPlugins, pluginIssues, reloadErrors } from './reload/plugin-changes.js';
import { UsageDbError } from './usage/usage-db.js';
import type { UsageStore } from './usage/usage-store.js';
import { GatewayMetrics } from './metrics/gateway-metrics.js';
import {
  ListenError,
  listenAddress,
  startMetricsListener,
  stopMetricsListener,
} from './metrics/metrics-listener.js';
import { OpsEndpoints, type Exposition } from './metrics/ops-endpoints.js';
import { readiness, type Readiness } from './metrics/readiness.js';

export interface GatewayOptions {
  /** The plugins enabled by name (the composition root's; none by default: modules by path only). */
  builtins?: PluginRegistry;
  /** Where pino writes (tests capture it); stdout by default. */
  logDestination?: DestinationStream;
  /** Overrides `server.port` (the CLI's --port). */
  port?: number;
  /** An embedder's own pool-state store, in place of the one the `state` section makes. */
  poolState?: PoolStateStore;
  /**
   * How many processes will serve this config (the CLI's `server.workers`; 1 by default). Above 1,
   * an upstream whose type sets `multiProcess` makes the config invalid.
   */
  processes?: number;
  /**
   * Epoch ms, for per-key limits only (their minute, day and month windows); `Date.now` by default.
   * For tests and embedders that must see a window end without waiting for it.
   */
  clock?: () => number;
  /** Whether this process binds `metrics.listen` (true by default); a cluster worker leaves it to the primary. */
  metricsListener?: boolean;
  /** What `/metrics` on the main port answers: this process's metrics by default (a worker: the cluster's). */
  clusterMetrics?: () => Promise<Exposition>;
}

export class Gateway {
  readonly hooks: GatewayHooks;
  /** The config in force: a reload replaces it (read it when needed, do not keep it). */
  private current: GatewayConfig;
  readonly logger: Logger;
  /** Every secret the gateway knows: scrubbed from log lines, error bodies and plugin output. */
  readonly secrets: Secrets;
  /** The per-request access line (core/observe/access-log.ts), written to the logger's destination. */
  private readonly accessLog: AccessLog;
  readonly upstreamTypes = new UpstreamTypeRegistry();
  /** Selection policies by name (`pool.strategy`): the built-in three, and plugins' own. */
  readonly selectionPolicies = new SelectionPolicyRegistry();
  readonly server: http.Server;
  private poolRef: UpstreamPool | undefined;
  private plugins: LoadedPlugin[] = [];
  private pipeline: Pipeline | undefined;
  private transport: Transport | undefined;
  private closing: Promise<void> | undefined;
  /** Client keys: upgrades are checked here, requests by the core's `request` tap. */
  private auth: ClientAuth | undefined;
  /** Client connections held at once (`server.maxConnections`, or derived from the fd limit); a reload may change it. */
  maxConnections: number;
  /** The fd soft limit the default was derived from (undefined when the config set it). */
  private readonly fdLimit: number | undefined;
  /** Failed client authentication per source address. */
  private readonly throttle: FailureThrottle;
  /** What plugins get in apply(): the parts they work with, not the gateway that runs them. */
  private readonly pluginContext: PluginContext;
  /** Per-key limits (`auth.keys[].limits`), tapped even when no key has any: a reload may add some. */
  private limits: KeyLimits | undefined;
  /** Pool state and the plugins' cluster store: this process's, or shared on Redis (`state`). */
  private readonly stores: StateStores;
  /** Usage records (`usage`): undefined when off. */
  private usage: UsageStore | undefined;
  /** What boot got: a reload builds with the same (plugins registry, port override, processes). */
  private readonly options: GatewayOptions;
  /** The config file: a reload reads it again. */
  private file = '';
  /** The core taps' per-request settings, swapped by a reload. */
  private coreTaps: CoreTaps | undefined;
  /** Config entries → Upstream objects; a reload keeps an object whose config is unchanged. */
  private readonly builder: UpstreamBuilder;
  /** Upstreams its type's check() disabled (no key…): a reload that fixes the config enables them. */
  private readonly checkDisabled = new Set<string>();
  /** The reload running, and the one queued behind it (every call made meanwhile shares it). */
  private reloading: Promise<ReloadResult> | undefined;
  private reloadQueued: Promise<ReloadResult> | undefined;
  /** Prometheus series (`metrics`); plugins get it as `context.metrics`. */
  readonly metrics: GatewayMetrics;
  private ops: OpsEndpoints | undefined;
  private metricsServer: http.Server | undefined;
  private metricsAddress: string | undefined;
  private source: ConfigSource | undefined;
  private metricsListener = true;

  private constructor(config: GatewayConfig, options: GatewayOptions) {
    this.current = config;
    this.options = options;
    this.secrets = new Secrets(config);
    const destination =
      (options.logDestination as LogDestination | undefined) ?? defaultLogDestination(config.log.format);
    this.logger = createLogger(config.log.level, destination, this.secrets);
    this.accessLog = new AccessLog(config.log.level, destination, this.secrets);
    this.hooks = createHooks();
    this.server = http.createServer({
      headersTimeout: config.server.headersTimeout,
      requestTimeout: config.server.requestTimeout,
      keepAliveTimeout: config.server.keepAliveTimeout,
      connectionsCheckingInterval: checkingInterval(
        config.server.headersTimeout,
        config.server.requestTimeout,
      ),
    });
    // Node closes a connection beyond the cap as soon as it is accepted (the client sees a reset).
    this.fdLimit = config.server.maxConnections === undefined ? fdSoftLimit() : undefined;
    this.maxConnections = config.server.maxConnections ?? defaultMaxConnections(this.fdLimit!);
    this.server.maxConnections = this.maxConnections;
    const dropped = new Occasional<undefined>(10_000, (count) =>
      this.logger.warn(
        { dropped: count, maxConnections: this.maxConnections },
        'connection limit reached: new connections closed (server.maxConnections)',
      ),
    );
    this.server.on('drop', () => dropped.hit(undefined));
    const pool = () => this.pool;
    const usage = () => this.usage?.reader;
    const current = () => this.current;
    this.stores = createStateStores(config, this.logger, this.secrets, options.clock);
    this.metrics = new GatewayMetrics(config, this.secrets);
    this.pluginContext = Object.freeze({
      metrics: this.metrics,
      cluster: this.stores.cluster,
      get usage() {
        return usage();
      },
      hooks: this.hooks,
      logger: this.logger,
      get config() {
        return current();
      },
      secrets: this.secrets,
      upstreamTypes: this.upstreamTypes,
      selectionPolicies: this.selectionPolicies,
      Stage,
      get pool() {
        return pool();
      },
      dispatch: (request: InternalRequestInit, sink: ExchangeSink) => {
        if (this.pipeline === undefined) throw new Error('tapgate: dispatch() before the gateway listens');
        return this.pipeline.dispatch(request, sink);
      },
    });
    const brute = config.auth.bruteForce;
    this.builder = new UpstreamBuilder(this.upstreamTypes, (u) => this.releaseUpstream(u));
    this.throttle = new FailureThrottle({ maxFailures: brute.maxFailures, windowMs: brute.window }, (s) =>
      this.logger.warn(s, 'authentication failures'),
    );
  }

  /** The config in force (a reload replaces it). */
  get config(): Readonly<GatewayConfig> {
    return this.current;
  }

  /** The pool, available once boot has built it (plugins use it at request time). */
  get pool(): UpstreamPool {
    if (this.poolRef === undefined)
      throw new Error('tapgate: the upstream pool is built after plugins are applied');
    return this.poolRef;
  }

  /** Boots a gateway from a loaded config. Throws ConfigError or a named PluginError on bad input. */
  static async create(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const config = loaded.config;
    if (options.port !== undefined) config.server.port = options.port;
    const gw = new Gateway(config, options);
    try {
      await gw.boot(loaded.source, options);
    } catch (err) {
      gw.throttle.close();
      await gw.closePlugins();
      await gw.stores.close();
      gw.usage?.close();
      throw err;
    }
    return gw;
  }

  private async boot(source: ConfigSource, options: GatewayOptions): Promise<void> {
    const config = this.config;
    this.file = source.file;
    this.source = source;
    this.metricsListener = options.metricsListener ?? true;
    const auth = this.clientAuth(config, source);
    this.auth = auth;
    this.throttle.start();
    await this.stores.start();
    // Built before the pool, which needs the plugins' upstream types: the core taps use the state.
    const state = options.poolState ?? this.stores.pool;
    const limits = KeyLimits.forKeys(config.auth.keys, {
      store: this.stores.limits,
      slots: state,
      clock: options.clock ?? Date.now,
    });
    this.limits = limits;
    this.coreTaps = tapCore(this.hooks, {
      auth,
      throttle: this.throttle,
      logger: this.logger,
      transientCooldownMs: config.proxy.transientCooldown,
      access: this.accessLog,
      scheduler: {
        strategy: config.pool.strategy,
        affinity: config.pool.affinity,
        policies: this.selectionPolicies,
      },
      state,
      limits,
    });
    this.metrics.start(this.hooks, { pool: () => this.poolRef, inflight: () => this.inflight });

    const configDir = dirname(source.file);
    await this.openUsage(source, configDir);
    this.plugins = await loadPlugins(
      config.plugins,
      source,
      configDir,
      config.upstreams.map((u) => u.type),
      options.builtins,
    );
    for (const p of this.plugins) {
      try {
        await p.instance.apply(this.pluginContext);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new PluginApplyError(`plugin "${p.name}" failed in apply(): ${reason}`, p.where, {
          cause: err,
        });
      }
    }
    const fixed = this.plugins.filter(
      (p) => p.cls.meta.options !== undefined && p.instance.reload === undefined,
    );
    if (fixed.length > 0)
      this.logger.info(
        { plugins: fixed.map((p) => p.name) },
        'these plugins cannot reload their options: changing them needs a restart',
      );

    if (this.selectionPolicies.get(config.pool.strategy) === undefined)
      throw source.error([
        {
          path: ['pool', 'strategy'],
          ...source.locate(['pool', 'strategy']),
          message: `unknown selection policy "${config.pool.strategy}"; known: ${this.selectionPolicies.names().join(', ')} (a plugin may register more)`,
        } as never,
      ]);

    if ((options.processes ?? 1) > 1) this.checkMultiProcess(config, source);
    const queue = new SlotQueue(config.pool.queue.maxQueue, config.pool.queue.waitTimeout);
    this.poolRef = new UpstreamPool(this.builder.build(config, source).list, state, queue);
    this.metrics.learn(this.poolRef.upstreams);
    this.checkUpstreams(this.poolRef.upstreams);
    const pool = this.poolRef;
    this.stores.track(pool.upstreams.map((u) => u.name));
    this.secrets.watch(() => pool.upstreams);
    sealHooks(this.hooks);

    this.transport = new Transport(
      {
        hooks: this.hooks,
        maxEventBytes: config.proxy.maxEventBytes,
        sendTimeout: config.server.sendTimeout,
        hold: config.proxy.hold,
      },
      config.proxy.transport,
    );
    this.pipeline = new Pipeline(
      this.hooks,
      config,
      this.poolRef,
      this.transport,
      this.logger,
      this.secrets,
      this.limits,
    );
    this.ops = new OpsEndpoints({
      path: config.metrics.path,
      token: config.metrics.token,
      metrics: config.metrics.enabled
        ? (options.clusterMetrics ?? (() => this.metrics.exposition()))
        : undefined,
      readiness: () => this.readiness(),
      logger: this.logger,
    });
    const ops = this.ops.handleMain;
    const handle = this.pipeline.handle;
    // Health and metrics first: no client key, no plugin route, not a proxied request.
    this.server.on('request', (req, res) => {
      if (!ops(req, res)) handle(req, res);
    });
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Malformed requests, oversized headers, slow clients: answer if the socket still can.
      if (!socket.writable) return socket.destroy();
      const status =
        err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const body = JSON.stringify({
        error: {
          message: `Bad request (${err.code ?? 'parse error'})`,
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  }

  /** Opens the usage database (SQLite is loaded only then); a file it cannot use stops the boot. */
  private async openUsage(source: ConfigSource, configDir: string): Promise<void> {
    const config = this.config.usage;
    if (!config.enabled) return;
    const file = resolve(configDir, config.path);
    try {
      const { UsageStore } = await import('./usage/usage-store.js');
      this.usage = await UsageStore.open(file, config, this.logger);
    } catch (err) {
      if (!(err instanceof UsageDbError)) throw err;
      throw source.error([
        { path: ['usage', 'path'], ...source.locate(['usage', 'path']), message: err.message } as never,
      ]);
    }
    this.usage.tap(this.hooks);
  }

  /**
   * Before any upstream is initialised: a type that cannot run in several processes on their own
   * state is refused, unless the state is shared (`state.store: redis`).
   */
  private checkMultiProcess(config: GatewayConfig, source: ConfigSource): void {
    if (config.state.store === 'redis') return;
    for (const type of new Set(config.upstreams.map((u) => String(u.type)))) {
      const reason = this.upstreamTypes.get(type)?.multiProcess;
      if (reason === undefined) continue;
      throw source.error([
        {
          path: ['server', 'workers'],
          ...source.locate(['server', 'workers']),
          message: `server.workers > 1 with ${type} upstreams needs state.store: redis: ${reason}`,
        } as never,
      ]);
    }
  }

  /** A type's check() (no key…) disables the upstream in this process; a config that fixes it enables it. */
  private checkUpstreams(upstreams: readonly Upstream[]): void {
    const pool = this.pool;
    for (const u of upstreams) {
      const reason = this.upstreamTypes.get(u.type)?.check?.(u);
      if (reason === undefined) {
        if (this.checkDisabled.delete(u.name)) pool.state.enable(u.name);
        continue;
      }
      // This process's own config (no key…): other instances may well have what it lacks.
      pool.state.disable(u.name, reason, 'process');
      this.checkDisabled.add(u.name);
      this.logger.warn({ upstream: u.name, reason }, 'upstream disabled');
    }
  }

  /** Frees an upstream no request uses any more: its sockets, and its type's state. */
  private releaseUpstream(u: Upstream): void {
    u.connections.close();
    try {
      this.upstreamTypes.get(u.type)?.release?.(u);
    } catch (err) {
      this.logger.error({ err, upstream: u.name }, 'releasing an upstream failed');
    }
  }

  /** Client keys (an empty one is skipped); none is allowed on a loopback host only. */
  private clientAuth(config: GatewayConfig, source: ConfigSource): ClientAuth {
    for (const k of config.auth.keys) {
      if (k.key === '')
        this.logger.warn({ keyName: k.name }, 'client key is empty (its variable is unset): skipped');
    }
    const auth = new ClientAuth(config.auth.keys.filter((k) => k.key !== ''));
    if (!auth.enabled && !isLoopbackHost(config.server.host)) {
      throw source.error([
        {
          path: ['auth', 'keys'],
          ...source.locate(['auth']),
          message: `no client keys are configured, so tapgate listens only on a loopback host; server.host is ${config.server.host}`,
        } as never,
      ]);
    }
    return auth;
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    // Routing needs a context; a throwaway one is fine for this rare path.
    const probe = { method: req.method ?? 'GET', pathname, search: q < 0 ? '' : url.slice(q), req } as never;
    let route;
    try {
      route = this.hooks.matchRoute.call(probe) ?? undefined;
      // An upgrade needs the client key like any request; a route with `auth: 'none'` checks its own.
      let clientName: string | undefined;
      if (route?.auth !== 'none' && this.auth?.enabled === true) {
        const address = req.socket.remoteAddress ?? '';
        const wait = this.throttle.refusal(address);
        if (wait > 0) return refuseUpgrade(socket, throttledError(wait));
        clientName = this.auth.authenticate(req.headers);
        if (clientName === undefined) {
          this.throttle.fail(address);
          return refuseUpgrade(socket, authenticationError(req.headers));
        }
      } else if (route?.auth !== 'none') {
        // No keys: a page in the user's browser must not reach loopback routes (as for requests).
        const refusal = browserRefusal(req.headers);
        if (refusal !== undefined) return refuseUpgrade(socket, new PermissionDeniedError(refusal));
      }
      if (this.hooks.upgrade.call({ req, socket, head, route, pathname, clientName }) === true) return;
    } catch (err) {
      this.logger.error({ err }, 'upgrade handler failed');
    }
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  }

  /**
   * Re-reads the config file (and, through the upstream types, every auth file) and applies it
   * without dropping anything; see core/reload/. Everything is validated first: any problem, or a
   * change only a restart can apply, refuses the whole reload (each problem logged with its key path
   * and line) and the old config keeps serving. One reload runs at a time: a call made while one
   * runs waits for it, then shares the next.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloading === undefined) {
      this.reloading = this.reloadOnce().finally(() => (this.reloading = undefined));
      return this.reloading;
    }
    this.reloadQueued ??= this.reloading.then(() => {
      this.reloadQueued = undefined;
      return this.reload();
    });
    return this.reloadQueued;
  }

  private async reloadOnce(): Promise<ReloadResult> {
    if (this.closing !== undefined || this.pipeline === undefined)
      return this.refuseReload(['the gateway is not running (starting or shutting down)']);
    let prepared: PreparedReload;
    try {
      prepared = await this.prepareReload();
    } catch (err) {
      return this.refuseReload(reloadErrors(err));
    }
    // A shutdown began while the files were read: what was built for the reload goes.
    if (this.closing !== undefined) {
      for (const u of prepared.created) this.releaseUpstream(u);
      return this.refuseReload(['the gateway began shutting down']);
    }
    return this.applyReload(prepared);
  }

  /** Every check, and the new upstreams built; nothing the running gateway uses is touched. */
  private async prepareReload(): Promise<PreparedReload> {
    const loaded = loadConfigFile(this.file);
    const next = loaded.config;
    const source = loaded.source;
    if (this.options.port !== undefined) next.server.port = this.options.port;
    const issues = restartIssues(this.config, next, source);
    const plugins = await resolvePlugins(
      next.plugins,
      source,
      dirname(source.file),
      next.upstreams.map((u) => u.type),
      this.options.builtins,
    );
    issues.push(...pluginIssues(this.plugins, plugins, source));
    if (this.selectionPolicies.get(next.pool.strategy) === undefined)
      issues.push({
        path: ['pool', 'strategy'],
        ...source.locate(['pool', 'strategy']),
        message: `unknown selection policy "${next.pool.strategy}"; known: ${this.selectionPolicies.names().join(', ')}`,
      } as ConfigIssue);
    if (issues.length > 0) throw source.error(issues);
    if ((this.options.processes ?? 1) > 1) this.checkMultiProcess(next, source);
    const auth = this.clientAuth(next, source);
    const running = new Map(this.pool.upstreams.map((u) => [u.name, u]));
    const { list, created } = this.builder.build(next, source, (name, spec) => {
      const u = running.get(name);
      return u !== undefined && isDeepStrictEqual(this.builder.specOf(u), spec) ? u : undefined;
    });
    return { config: next, auth, upstreams: list, created, plugins: changedPlugins(this.plugins, plugins) };
  }

  /** Swaps everything requests read in one synchronous step, then lets what was replaced drain. */
  private async applyReload(p: PreparedReload): Promise<ReloadResult> {
    const prev = this.current;
    const next = p.config;
    const pool = this.pool;
    const upstreams = namedChanges(
      pool.upstreams.map((u) => ({ name: u.name, spec: this.builder.specOf(u) })),
      p.upstreams.map((u) => ({ name: u.name, spec: this.builder.specOf(u) })),
    );
    const keys = namedChanges(prev.auth.keys, next.auth.keys);

    // From here to the pool's swap: no await, so no request sees half of the new config.
    this.current = next;
    this.pipeline!.config = next;
    this.secrets.learn(next);
    this.logger.level = next.log.level;
    this.accessLog.setLevel(next.log.level);
    this.applyServerSettings(next);
    this.throttle.configure({
      maxFailures: next.auth.bruteForce.maxFailures,
      windowMs: next.auth.bruteForce.window,
    });
    pool.queue.maxQueue = next.pool.queue.maxQueue;
    pool.queue.waitTimeout = next.pool.queue.waitTimeout;
    this.transport!.configure(
      {
        maxEventBytes: next.proxy.maxEventBytes,
        sendTimeout: next.server.sendTimeout,
        hold: next.proxy.hold,
      },
      next.proxy.transport,
    );
    this.auth = p.auth;
    this.coreTaps!.reconfigure({
      auth: p.auth,
      transientCooldownMs: next.proxy.transientCooldown,
      scheduler: {
        strategy: next.pool.strategy,
        affinity: next.pool.affinity,
        policies: this.selectionPolicies,
      },
    });
    this.limits!.replaceKeys(next.auth.keys);
    const retired = pool.replace(p.upstreams);
    this.metrics.learn(p.upstreams);
    this.checkUpstreams(p.created);
    this.stores.track(p.upstreams.map((u) => u.name));
    const pending: Promise<unknown>[] = [];
    for (const r of p.plugins) {
      const plugin = this.plugins.find((l) => l.name === r.name)!;
      pending.push(this.pluginReload(plugin, r.options));
      this.plugins[this.plugins.indexOf(plugin)] = { ...plugin, options: r.options };
    }

    for (const [u, drained] of retired) {
      void drained.then(() => {
        this.releaseUpstream(u);
        this.logger.info({ upstream: u.name }, 'upstream drained and closed');
      });
    }
    // What lives outside config.yaml (auth files) is re-read: an account shared with a new
    // upstream was not read again by its init.
    for (const u of p.upstreams) {
      const def = this.upstreamTypes.get(u.type);
      if (def?.reload === undefined) continue;
      pending.push(
        Promise.resolve()
          .then(() => def.reload!(u))
          .catch((err: unknown) =>
            this.logger.error({ err, upstream: u.name }, 're-reading the upstream failed on reload'),
          ),
      );
    }
    await Promise.all(pending);
    const result: ReloadResult = {
      status: 'applied',
      errors: [],
      upstreams,
      keys,
      plugins: p.plugins.map((r) => r.name),
    };
    this.logger.info(
      { upstreams: result.upstreams, keys: result.keys, plugins: result.plugins },
      'config reloaded',
    );
    return result;
  }

  private async pluginReload(plugin: LoadedPlugin, options: unknown): Promise<void> {
    try {
      await plugin.instance.reload!(options);
    } catch (err) {
      this.logger.error(
        { err, plugin: plugin.name },
        'plugin reload failed: its options may be half applied',
      );
    }
  }

  /** The HTTP server's settings that apply to a running server (host and port need a restart). */
  private applyServerSettings(next: GatewayConfig): void {
    const server = this.server;
    server.headersTimeout = next.server.headersTimeout;
    server.requestTimeout = next.server.requestTimeout;
    server.keepAliveTimeout = next.server.keepAliveTimeout;
    this.maxConnections = next.server.maxConnections ?? defaultMaxConnections(this.fdLimit ?? fdSoftLimit());
    server.maxConnections = this.maxConnections;
  }

  private refuseReload(errors: string[]): ReloadResult {
    for (const e of errors) this.logger.error({ file: this.file }, `reload refused: ${e}`);
    this.logger.warn(
      { errors: errors.length },
      'config reload refused: nothing changed, the old config keeps serving',
    );
    return refused(errors);
  }

  /** Starts listening (the metrics listener first); resolves with the main bound address. */
  async listen(): Promise<AddressInfo> {
    await this.listenMetrics();
    return this.listenMain();
  }

  /** `metrics.listen`: set explicitly, a bind failure stops the boot; the default one is skipped with a warning. */
  private async listenMetrics(): Promise<void> {
    const m = this.config.metrics;
    const address = listenAddress(m.listen);
    if (!m.enabled || !this.metricsListener || address === undefined || this.ops === undefined) return;
    try {
      const bound = await startMetricsListener(address, this.ops.handleListener);
      this.metricsServer = bound.server;
      this.metricsAddress = bound.url;
    } catch (err) {
      if (!(err instanceof ListenError)) throw err;
      if (m.listen === undefined) {
        this.logger.warn(
          { listen: address, reason: err.message },
          'metrics listener not started: the default metrics.listen is taken (set metrics.listen, or false)',
        );
        return;
      }
      const source = this.source!;
      throw source.error([
        {
          path: ['metrics', 'listen'],
          ...source.locate(['metrics', 'listen']),
          message: err.message,
        } as never,
      ]);
    }
  }

  private listenMain(): Promise<AddressInfo> {
    const { host, port } = this.config.server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        // After listening, an error is an accept that failed (out of descriptors, when libuv's
        // reserve descriptor could not absorb it): the server goes on; without a listener it would crash.
        const acceptFailed = new Occasional<NodeJS.ErrnoException>(10_000, (count, err) =>
          this.logger.error({ code: err.code, count }, 'accepting a connection failed'),
        );
        this.server.on('error', (err: NodeJS.ErrnoException) => acceptFailed.hit(err));
        const addr = this.server.address() as AddressInfo;
        if (!this.config.auth.keys.some((k) => k.key !== '')) {
          this.logger.warn(
            { host },
            'no client keys configured: accepting unauthenticated requests, on a loopback host only',
          );
        }
        const urls = clientUrls(addr);
        this.logger.info(
          {
            host: addr.address,
            port: addr.port,
            upstreams: this.pool.upstreams.map((u) => u.name),
            plugins: this.plugins.map((p) => p.name),
            maxConnections: this.maxConnections,
            state: this.config.state.store,
            ...(this.metricsAddress === undefined
              ? {}
              : { metrics: this.metricsAddress + this.config.metrics.path }),
            ...(this.fdLimit === undefined ? {} : { fdLimit: this.fdLimit }),
            ...urls,
          },
          'tapgate listening',
        );
        this.logger.info(clientsMessage(urls));
        // Synchronously, before any connection is read: a tap keeps the pool for request time.
        try {
          this.hooks.ready.call({ pool: this.pool, address: addr, url: this.url });
        } catch (err) {
          this.logger.error({ err }, 'a ready tap threw');
        }
        resolve(addr);
      });
    });
  }

  /** The URL clients use, e.g. http://127.0.0.1:8787. */
  get url(): string {
    const addr = this.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}`;
  }

  /** The metrics listener's URL (e.g. http://127.0.0.1:9464), or undefined when there is none. */
  get metricsUrl(): string | undefined {
    return this.metricsAddress;
  }

  /** What `/readyz` answers: counts only. */
  readiness(): Readiness {
    const link = this.stores.link;
    const store = link === undefined ? 'memory' : link.up ? 'redis' : 'fallback';
    return readiness(this.poolRef, store, this.closing !== undefined || this.pipeline?.draining === true);
  }

  /** Requests in flight right now. */
  get inflight(): number {
    return this.pipeline?.inflight.size ?? 0;
  }

  /**
   * Graceful stop: refuse new connections, let in-flight requests finish within the drain timeout,
   * end the rest with the protocol's terminal error, then release plugins and sockets.
   */
  close(drainMs: number = this.config.server.drainTimeout): Promise<void> {
    this.closing ??= this.doClose(drainMs);
    return this.closing;
  }

  private async doClose(drainMs: number): Promise<void> {
    const pipeline = this.pipeline;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    try {
      this.hooks.closing.call({ drainMs });
    } catch (err) {
      this.logger.error({ err }, 'a closing tap threw');
    }
    if (pipeline !== undefined) {
      pipeline.draining = true;
      this.poolRef?.queue.clear();
      const left = await pipeline.waitForIdle(drainMs);
      for (const ctx of left) {
        // Stop the relay first, so nothing is written after the terminal event.
        ctx.activeAttempt?.cancel();
        pipeline.fail(ctx, new ShuttingDownError('Gateway shut down before the response finished'));
      }
      if (left.length > 0)
        this.logger.warn({ count: left.length }, 'drain timeout: ended requests still in flight');
      await pipeline.waitForIdle(1000);
    }
    // Requests are done. Plugins close now: the sockets they took over (WebSocket viewers) are not
    // HTTP connections, so server.close() would wait for them forever.
    await this.closePlugins();
    // After the plugins: a refresh finishing in a plugin's close() may still write shared state.
    await this.stores.close();
    // Every request has finished: its record is in the batch this writes.
    this.usage?.close();
    this.throttle.close();
    this.server.closeAllConnections();
    await closed;
    if (this.metricsServer !== undefined) await stopMetricsListener(this.metricsServer);
    this.transport?.close();
    for (const u of this.poolRef?.upstreams ?? []) u.connections.close();
    this.logger.info('tapgate stopped');
    this.logger.flush();
  }

  private async closePlugins(): Promise<void> {
    for (const p of [...this.plugins].reverse()) {
      try {
        await p.instance.close?.();
      } catch (err) {
        this.logger.error({ err, plugin: p.name }, 'plugin close failed');
      }
    }
  }
}

/** Answers an upgrade without a valid client key (or over the failure limit) as a request would be, then closes. */
function refuseUpgrade(socket: Duplex, error: GatewayError): void {
  const body = JSON.stringify(openAIErrorBody(error.message, error.type, error.errorCode, error.param));
  const extra =
    error.retryAfter !== undefined
      ? `retry-after: ${error.retryAfter}\r\n`
      : error.status === 401
        ? 'www-authenticate: Bearer\r\n'
        : '';
  socket.end(
    `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status]}\r\ncontent-type: application/json\r\n` +
      `${extra}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Node enforces headersTimeout and requestTimeout only when it sweeps its connections (every 30 s
 * by default), so a slow client could hold a connection that long past a short timeout. Sweep at a
 * quarter of the shorter one, within 250 ms … 30 s.
 */
function checkingInterval(headersTimeout: number, requestTimeout: number): number {
  const set = [headersTimeout, requestTimeout].filter((t) => t > 0);
  if (set.length === 0) return 30_000;
  return Math.min(30_000, Math.max(250, Math.floor(Math.min(...set) / 4)));
}

/** A reload checked and ready to apply. */
interface PreparedReload {
  config: GatewayConfig;
  auth: ClientAuth;
  upstreams: Upstream[];
  /** New Upstream objects (added or changed); the rest of `upstreams` are the running ones. */
  created: Upstream[];
  /** Plugins whose options changed (each has reload()). */
  plugins: ResolvedPlugin[];
}
