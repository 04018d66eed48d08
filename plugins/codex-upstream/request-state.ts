/** What the plugin remembers about one request, in its typed request state. */
import { createStateKey, type RequestContext } from '../../core/index.js';
import { isCodexOriginator } from './sdk-events.js';

export const NAME = 'codex-upstream';

export interface CodexRequestState {
  /** Per upstream: the token generation the last attempt sent (a 401 refers to it). */
  readonly sent: Map<string, number>;
  /** Upstreams that already had their one refresh-and-retry after a 401 in this request. */
  readonly refreshed: Set<string>;
  /** After a 401, the upstream whose retry (pinned by a `same` verdict) must refresh first; consumed by the next prepare. */
  refreshNext: string | undefined;
  /** The client calls itself Codex (`originator: codex_…`), so Codex-only events may reach it. */
  readonly codexClient: boolean;
}

const STATE = createStateKey<CodexRequestState>(NAME, (ctx) => ({
  sent: new Map(),
  refreshed: new Set(),
  refreshNext: undefined,
  codexClient: isCodexOriginator(ctx.req.headers.originator),
}));

export function requestState(ctx: RequestContext): CodexRequestState {
  return ctx.state(STATE);
}

export function peekState(ctx: RequestContext): CodexRequestState | undefined {
  return ctx.peekState(STATE);
}
