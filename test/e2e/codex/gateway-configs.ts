/** The gateway configs the scenarios run: one upstream, or two for failover. */
import { basicConfig } from '../../helpers/gateway.js';
import { DEFAULT_PLUGINS, gatewayConfig, upstreamKey } from '../../helpers/proxy-config.js';
import { GATEWAY_IDLE } from './common.js';
import { FAILOVER_PATHS } from './upstream-scripts.js';

/** One upstream, with the idle timeout the stall scenario waits for. */
export const oneUpstream = (upstreamUrl: string): string =>
  basicConfig(upstreamUrl).replace('plugins:', `proxy:\n  timeouts: { idle: ${GATEWAY_IDLE} }\nplugins:`);

/** Two upstreams on the one scripted server, told apart by path; up1 is preferred (priority 0). */
export const twoUpstreams = (upstreamUrl: string): string =>
  gatewayConfig({
    proxy: { timeouts: { idle: GATEWAY_IDLE } },
    upstreams: [
      {
        name: 'up1',
        type: 'openai',
        baseUrl: `${upstreamUrl}${FAILOVER_PATHS.first}/v1`,
        apiKey: upstreamKey('up1'),
        priority: 0,
      },
      {
        name: 'up2',
        type: 'openai',
        baseUrl: `${upstreamUrl}${FAILOVER_PATHS.second}/v1`,
        apiKey: upstreamKey('up2'),
        priority: 1,
      },
    ],
  });

/** The smallest socket age limit the gateway takes: the session-slow upstream outlasts it. */
export const MAX_AGE = '1s';

/** One upstream; a WebSocket is good for MAX_AGE, then the next create gets `websocket_connection_limit_reached`. */
export const shortLivedSockets = (upstreamUrl: string): string =>
  gatewayConfig({
    proxy: { timeouts: { idle: GATEWAY_IDLE } },
    upstreams: [{ name: 'up1', type: 'openai', baseUrl: `${upstreamUrl}/v1`, apiKey: upstreamKey('up1') }],
    plugins: [
      { name: 'responses-routes', options: { websocket: { maxAge: MAX_AGE } } },
      ...DEFAULT_PLUGINS.filter((p) => p !== 'responses-routes'),
    ],
  });
