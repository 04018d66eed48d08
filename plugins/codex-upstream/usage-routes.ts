/**
 * The usage routes Codex reads its limits from (`rate_limit_status_url`): `{chatgpt_base_url}/wham/usage`
 * when that base contains `/backend-api`, else `{base}/api/codex/usage`. Both are answered locally from
 * the pool's Codex accounts (usage-status.ts), for a client key like any request.
 */
import type { RouteMatch } from '../../core/index.js';

export const CODEX_USAGE: RouteMatch = { kind: 'codex.usage', proxy: false, auth: 'client' };

const PATHS = new Set(['/backend-api/wham/usage', '/api/codex/usage']);

/** GET only; one trailing slash tolerated; the query string was split off by the core. */
export function matchUsageRoute(method: string, pathname: string): RouteMatch | undefined {
  if (method !== 'GET') return undefined;
  const path = pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname;
  return PATHS.has(path) ? CODEX_USAGE : undefined;
}
