/** The public API for plugin authors and embedders. */
export { Gateway, type GatewayOptions } from './gateway.js';
export type { ReloadResult, NamedChanges } from './reload/reload-result.js';
export type { PluginRegistry } from './loader/plugins.js';
export { Stage } from './kernel/stages.js';
export type { GatewayHooks } from './kernel/hooks.js';
export type { RequestContext } from './kernel/context.js';
export {
  definePlugin,
  PLUGIN_API_VERSION,
  type PluginContext,
  type PluginMeta,
  type PluginDefinition,
  type OptionsSchema,
  type TapgatePlugin,
  type PluginClass,
} from './kernel/plugin-api.js';
export { createStateKey, type PluginStateKey } from './kernel/context.js';
export * from './kernel/errors.js';
export * from './loader/plugin-errors.js';
export {
  HANDLED,
  type RouteMatch,
  type Reply,
  type OutgoingRequest,
  type UpstreamResponseHead,
  type SseEvent,
  type Outcome,
  type TokenUsage,
  type Classification,
  type UpgradeRequest,
  type GatewayReady,
  type GatewayClosing,
} from './kernel/types.js';
export {
  Upstream,
  UpstreamExpandError,
  type UpstreamInitContext,
  type UpstreamTypeDefinition,
  type UpstreamTypeRegistry,
  type RefreshOutcome,
} from './pool/upstream.js';
export { PoolAdmin, PoolAdminError, type AdminUpstreamView } from './pool/pool-admin.js';
export { ConfigError, parseConfig, loadConfigFile } from './config/config.js';
export { retryAfterMs, retryAfterSeconds, tryAgainMs } from './pool/retry-after.js';
export { truncate, MAX_ECHO_CHARS } from './observe/truncate.js';
export { Occasional } from './observe/occasional.js';
export { FailureThrottle, type FailureThrottleOptions, type FailureSummary } from './guard/auth-throttle.js';
export {
  duration,
  integer,
  size,
  headerToken,
  headerText,
  unsafeHeaderChar,
  formatDuration,
} from './config/units.js';
export type { Logger } from './observe/logger.js';
export type { Secrets } from './observe/secrets.js';
export type { UpstreamPool } from './pool/pool.js';
export type { UpstreamQuota, QuotaWindow } from './pool/quota.js';
export type { UpstreamStateView } from './pool/pool-state.js';
export { serializeEvent, parseFrame, SseFramer, type FrameSink } from './proxy/sse.js';
export { parseJsonBody } from './proxy/body.js';
export type { ExchangeSink, InternalExchange, InternalRequestInit } from './proxy/internal-exchange.js';
export {
  SelectionPolicyRegistry,
  type SelectionPolicy,
  type SelectionPolicyFactory,
} from './pool/policies.js';
export { SharedStoreUnavailableError, type ClusterStore, type ClusterLock } from './state/cluster-store.js';
export type { UsageRecord, UsageGroup, UsageQuery, UsageRow, UsageReader } from './usage/usage-types.js';
export type { PluginMetrics, TokenRefreshResult } from './metrics/gateway-metrics.js';
export type { Readiness } from './metrics/readiness.js';
export type { Exposition } from './metrics/ops-endpoints.js';
