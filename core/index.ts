/** The public API for plugin authors and embedders. */
export { Gateway, type GatewayOptions } from './gateway.js';
export { Stage } from './stages.js';
export { TOKENS, inject, injectable } from './di.js';
export type { GatewayHooks } from './hooks.js';
export type { RequestContext } from './context.js';
export type { PluginMeta, TapgatePlugin, PluginClass } from './plugin-api.js';
export * from './errors.js';
export * from './plugin-errors.js';
export {
  HANDLED,
  type RouteMatch,
  type Reply,
  type OutgoingRequest,
  type SseEvent,
  type Outcome,
  type Classification,
  type UpgradeRequest,
} from './types.js';
export { Upstream, type UpstreamTypeDefinition } from './upstream.js';
export { ConfigError, parseConfig, loadConfigFile } from './config.js';
export { retryAfterMs } from './retry-after.js';
export { truncate, MAX_ECHO_CHARS } from './truncate.js';
export { FailureThrottle, type FailureThrottleOptions, type FailureSummary } from './auth-throttle.js';
