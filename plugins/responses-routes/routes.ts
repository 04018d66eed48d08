/** The Responses API's routes: three prefixes, each with `/responses` and `/responses/compact`. */
import type { RouteMatch } from '../../core/index.js';
import { waitingFrames } from './waiting.js';

const PREFIXES = ['/v1', '', '/backend-api/codex'];

export const RESPONSES: RouteMatch = {
  kind: 'responses',
  proxy: true,
  auth: 'client',
  upstreamPath: '/responses',
  jsonBody: true,
  requiresTerminalEvent: true,
  waitingFrames,
};

export const RESPONSES_COMPACT: RouteMatch = {
  kind: 'responses.compact',
  proxy: true,
  auth: 'client',
  upstreamPath: '/responses/compact',
  jsonBody: true,
  // Compact is unary JSON (Codex drops `stream`); if an upstream streams it anyway, the same terminal rule holds.
  requiresTerminalEvent: true,
  unary: true,
};

export const MODELS: RouteMatch = { kind: 'models', proxy: false, auth: 'client' };

const POST_ROUTES = new Map<string, RouteMatch>();
for (const p of PREFIXES) {
  POST_ROUTES.set(`${p}/responses`, RESPONSES);
  POST_ROUTES.set(`${p}/responses/compact`, RESPONSES_COMPACT);
}
const GET_ROUTES = new Map<string, RouteMatch>([
  ['/v1/models', MODELS],
  ['/models', MODELS],
]);

/** One trailing slash is tolerated; the query string was split off by the core. */
function normalise(pathname: string): string {
  return pathname.length > 1 && pathname.charCodeAt(pathname.length - 1) === 47
    ? pathname.slice(0, -1)
    : pathname;
}

export function matchResponsesRoute(method: string, pathname: string): RouteMatch | undefined {
  const path = normalise(pathname);
  if (method === 'POST') return POST_ROUTES.get(path);
  if (method === 'GET') return GET_ROUTES.get(path);
  return undefined;
}

/** For a WebSocket upgrade: is this a Responses route, whatever the method? */
export function isResponsesPath(pathname: string): boolean {
  return POST_ROUTES.has(normalise(pathname));
}

export function isResponsesRoute(route: RouteMatch | undefined): boolean {
  return route === RESPONSES || route === RESPONSES_COMPACT;
}
