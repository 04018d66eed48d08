/** What the plugin remembers about one request, in `ctx.locals['codex-upstream']`. */
import type { RequestContext } from '../../core/index.js';
import { isCodexOriginator } from './sdk-events.js';

export const NAME = 'codex-upstream';

export interface CodexRequestState {
  /** Per upstream: the token generation the last attempt sent (a 401 refers to it). */
  readonly sent: Map<string, number>;
  /** Upstreams that already had their one refresh-and-retry after a 401 in this request. */
  readonly refreshed: Set<string>;
  /** The upstream a `refresh` verdict asked to retry; consumed by the next prepare. */
  refreshNext: string | undefined;
  /** The client calls itself Codex (`originator: codex_…`), so Codex-only events may reach it. */
  readonly codexClient: boolean;
}

export function requestState(ctx: RequestContext): CodexRequestState {
  let st = ctx.locals[NAME] as CodexRequestState | undefined;
  if (st === undefined) {
    st = {
      sent: new Map(),
      refreshed: new Set(),
      refreshNext: undefined,
      codexClient: isCodexOriginator(ctx.req.headers.originator),
    };
    ctx.locals[NAME] = st;
  }
  return st;
}

export function peekState(ctx: RequestContext): CodexRequestState | undefined {
  return ctx.locals[NAME] as CodexRequestState | undefined;
}
