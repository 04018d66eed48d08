/**
 * The admin API under `{path}/api/upstreams`, behind the dashboard's admin token: the upstreams with
 * their state (GET), and operator actions on one (POST `…/{name}/enable|disable|clear-cooldown|refresh`).
 * Every action writes exactly one audit line (`admin action`), never the token. A browser session's
 * POST must come from the page itself (same Origin and a header only a script of the page sends):
 * SameSite cookies alone would let a sibling site on the same host post.
 */
import type { IncomingMessage } from 'node:http';
import {
  openAIErrorBody,
  PoolAdminError,
  type AdminUpstreamView,
  type Logger,
  type PoolAdmin,
  type Reply,
  type Secrets,
} from '../../core/index.js';
import { readLimited, sameOrigin, type Identity } from './auth.js';

/** The header the page sends with every action (a cross-site form or `no-cors` fetch cannot). */
export const ADMIN_HEADER = 'x-tapgate-admin';
export const ACTIONS = ['enable', 'disable', 'clear-cooldown', 'refresh'] as const;
export type AdminAction = (typeof ACTIONS)[number];
export const DEFAULT_DISABLE_REASON = 'disabled by an admin';

const MAX_BODY_BYTES = 4096;
const MAX_REASON = 200;
const MAX_TEXT = 300;
const MAX_NAME = 64;
const HEADERS = {
  'content-type': 'application/json',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
} as const;

type Answer = Exclude<Reply, symbol>;

function json(status: number, body: unknown, extra: Record<string, string> = {}): Answer {
  return { status, headers: { ...HEADERS, ...extra }, body: JSON.stringify(body) };
}

/** An OpenAI-shaped error answer. */
export function apiError(
  status: number,
  message: string,
  code: string,
  extra: Record<string, string> = {},
): Answer {
  const type = status >= 500 ? 'server_error' : 'invalid_request_error';
  return json(status, openAIErrorBody(message, type, code), extra);
}

export class AdminApi {
  constructor(
    private readonly admin: PoolAdmin,
    private readonly log: Logger,
    private readonly secrets: Secrets,
  ) {}

  /** `rest`: the path after `{path}/api/upstreams` (empty, or `/{name}[/{action}]`). */
  async handle(req: IncomingMessage, method: string, who: Identity, rest: string): Promise<Answer> {
    const parts = rest === '' ? [] : rest.slice(1).split('/');
    if (parts.length === 0 || (parts.length === 1 && parts[0] !== '')) {
      if (method !== 'GET' && method !== 'HEAD')
        return apiError(405, 'Method not allowed', 'method_not_allowed', { allow: 'GET, HEAD' });
      return this.read(parts[0]);
    }
    const [encoded, action] = parts;
    if (parts.length !== 2 || !(ACTIONS as readonly string[]).includes(action!))
      return apiError(404, 'Not found', 'not_found');
    if (method !== 'POST')
      return apiError(405, 'Method not allowed', 'method_not_allowed', { allow: 'POST' });
    let name: string;
    try {
      name = decodeURIComponent(encoded!);
    } catch {
      return apiError(400, 'The upstream name is not valid percent-encoding', 'invalid_request');
    }
    return this.act(req, who, action as AdminAction, name);
  }

  private read(encoded: string | undefined): Answer {
    try {
      if (encoded === undefined)
        return json(200, { object: 'list', data: this.admin.list().map(this.clean) });
      return json(200, this.clean(this.admin.get(decodeURIComponent(encoded))));
    } catch (err) {
      return this.failure(err);
    }
  }

  /** One action, one audit line, whatever its result. */
  private async act(req: IncomingMessage, who: Identity, action: AdminAction, name: string): Promise<Answer> {
    const started = Date.now();
    let answer: Answer;
    let reason: string | undefined;
    if (who.kind === 'session' && !fromThePage(req)) {
      answer = apiError(
        403,
        `A browser session's action must come from the dashboard page (same origin, ${ADMIN_HEADER} header)`,
        'cross_origin_refused',
      );
    } else {
      try {
        answer = await this.run(req, action, name, (r) => (reason = r));
      } catch (err) {
        answer = this.failure(err);
      }
    }
    const audit: Record<string, unknown> = {
      action,
      upstream: name.slice(0, MAX_NAME),
      by: who.kind,
      address: req.socket.remoteAddress ?? null,
      result: answer.status < 300 ? 'ok' : 'refused',
      status: answer.status,
      ms: Date.now() - started,
    };
    if (reason !== undefined) audit.reason = reason;
    if (answer.status >= 300) audit.error = errorMessage(answer);
    this.log.info({ audit }, 'admin action');
    return answer;
  }

  private async run(
    req: IncomingMessage,
    action: AdminAction,
    name: string,
    noteReason: (reason: string) => void,
  ): Promise<Answer> {
    const admin = this.admin;
    switch (action) {
      case 'enable':
        return this.done(action, await admin.enable(name));
      case 'disable': {
        const reason = await readReason(req);
        if (typeof reason !== 'string') return reason;
        noteReason(reason);
        return this.done(action, admin.disable(name, reason));
      }
      case 'clear-cooldown':
        return this.done(action, admin.clearCooldowns(name));
      case 'refresh': {
        const outcome = await admin.refresh(name);
        return this.done(action, admin.get(name), {
          result: outcome.result,
          expiresAt: outcome.expiresAt ?? null,
        });
      }
    }
  }

  private done(action: AdminAction, view: AdminUpstreamView, extra: Record<string, unknown> = {}): Answer {
    return json(200, { ok: true, action, ...extra, upstream: this.clean(view) });
  }

  private failure(err: unknown): Answer {
    if (err instanceof PoolAdminError)
      return apiError(err.status, this.secrets.clip(err.message, MAX_TEXT), err.errorCode ?? 'error');
    this.log.error({ err }, 'admin action failed');
    return apiError(500, 'The action failed; see the gateway log', 'internal_error');
  }

  /** Free text that came from upstreams or operators, scrubbed of every secret the gateway knows. */
  private readonly clean = (v: AdminUpstreamView): AdminUpstreamView => ({
    ...v,
    disabledReason: v.disabledReason === null ? null : this.secrets.clip(v.disabledReason, MAX_TEXT),
    cooldowns: v.cooldowns.map((c) => ({ ...c, reason: this.secrets.clip(c.reason, MAX_TEXT) })),
  });
}

/** Same origin (an Origin the browser always sends on a POST) and the page's own header. */
function fromThePage(req: IncomingMessage): boolean {
  const h = req.headers;
  return h.origin !== undefined && sameOrigin(h) && h[ADMIN_HEADER] === '1';
}

/** The disable reason from an optional JSON body `{"reason": "…"}`, or the error answer. */
async function readReason(req: IncomingMessage): Promise<string | Answer> {
  const body = await readLimited(req, MAX_BODY_BYTES);
  if (body === undefined)
    return apiError(413, 'The body is too large', 'body_too_large', { connection: 'close' });
  if (body.trim() === '') return DEFAULT_DISABLE_REASON;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return apiError(400, 'The body must be JSON: {"reason": "…"}', 'invalid_json');
  }
  const reason = (parsed as { reason?: unknown } | null)?.reason;
  if (reason === undefined || reason === null) return DEFAULT_DISABLE_REASON;
  if (typeof reason !== 'string') return apiError(400, 'reason must be a string', 'invalid_reason');
  // Control characters would break the log line and the card: spaces instead.
  const trimmed = Array.from(reason, (c) => (c < ' ' || c === '\x7f' ? ' ' : c))
    .join('')
    .trim();
  return trimmed === '' ? DEFAULT_DISABLE_REASON : trimmed.slice(0, MAX_REASON);
}

function errorMessage(answer: Answer): string {
  try {
    return (JSON.parse(String(answer.body)) as { error: { message: string } }).error.message;
  } catch {
    return `HTTP ${answer.status}`;
  }
}
