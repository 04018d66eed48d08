/** Gateway YAML for the shared-state tests: openai upstreams on scripted servers, state on a Redis. */
import { gatewayConfig, upstreamKey } from './proxy-config.js';
import type { ScriptedUpstream } from './scripted-upstream.js';

export interface SharedUpstream {
  name: string;
  up: ScriptedUpstream;
  maxConcurrency?: number;
}

export interface SharedStateExtra {
  pool?: Record<string, unknown>;
  /** Merged over `{ store: redis, url }`. */
  state?: Record<string, unknown>;
}

export function sharedStateConfig(
  url: string,
  ups: readonly SharedUpstream[],
  extra: SharedStateExtra = {},
): string {
  return gatewayConfig({
    state: { store: 'redis', url, ...extra.state },
    pool: extra.pool,
    upstreams: ups.map((u) => ({
      name: u.name,
      type: 'openai',
      baseUrl: u.up.url + '/v1',
      apiKey: upstreamKey(u.name),
      ...(u.maxConcurrency === undefined ? {} : { maxConcurrency: u.maxConcurrency }),
    })),
  });
}
