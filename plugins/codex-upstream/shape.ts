/**
 * What the Codex backend is sent: a fresh header set (credentials, identity, the allow-listed
 * client headers) and a normalised body. The client's body is never mutated: what changes is
 * copied, because the same parsed body may be replayed to another upstream type on failover.
 */
import type { CodexIdentity } from './schema.js';

export interface HeaderInputs {
  /** The gateway's request id: an `x-request-id` with this value (set by the request-id plugin) passes. */
  requestId: string;
  accessToken: string;
  accountId: string;
  identity: CodexIdentity;
  /** Lower-case client header names that may pass. */
  pass: ReadonlySet<string>;
  /** Compact is unary JSON; everything else streams. */
  compact: boolean;
}

/** Set by tapgate (last), whatever the client sent under these names. */
const IDENTITY = new Set(['originator', 'version', 'user-agent']);

/**
 * The headers for the backend, built from scratch. From `incoming` (the client's forwardable headers
 * as prepared so far) only the allow-listed names pass, plus the gateway's own `x-request-id` (not a
 * client's) and a `content-encoding` the core could not decode (the body then goes as sent).
 */
export function shapeHeaders(
  incoming: Readonly<Record<string, string>>,
  h: HeaderInputs,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of h.pass) {
    const value = incoming[name];
    if (value !== undefined && !IDENTITY.has(name)) out[name] = value;
  }
  const requestId = incoming['x-request-id'];
  if (requestId !== undefined && requestId === h.requestId) out['x-request-id'] = requestId;
  const encoding = incoming['content-encoding'];
  if (encoding !== undefined) out['content-encoding'] = encoding;
  out['content-type'] = 'application/json';
  out.accept = h.compact ? 'application/json' : 'text/event-stream';
  out.originator = h.identity.originator;
  out['user-agent'] = h.identity.userAgent;
  out.version = h.identity.version;
  out['chatgpt-account-id'] = h.accountId;
  out.authorization = `Bearer ${h.accessToken}`;
  return out;
}

const ENCRYPTED_REASONING = 'reasoning.encrypted_content';

/**
 * The body the backend accepts, or undefined when `body` already is (so it is not re-serialised).
 * Responses: `stream: true`, `store: false`, encrypted reasoning included when `reasoning` is set.
 * Compact: no `stream`, no `store`. Both: the removed parameters deleted, a string `input` made a
 * user message, `system` messages made `developer`, a missing `instructions` made "". Anything else,
 * unknown fields and input items included, passes untouched.
 */
export function normaliseBody(
  body: Readonly<Record<string, unknown>>,
  compact: boolean,
  removeParameters: readonly string[],
): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  const edit = (): Record<string, unknown> => (out ??= { ...body });
  const cur = (): Readonly<Record<string, unknown>> => out ?? body;

  for (const p of removeParameters) if (Object.hasOwn(body, p)) delete edit()[p];
  if (compact) {
    if (Object.hasOwn(cur(), 'stream')) delete edit().stream;
    if (Object.hasOwn(cur(), 'store')) delete edit().store;
  } else {
    if (cur().stream !== true) edit().stream = true;
    if (cur().store !== false) edit().store = false;
    const reasoning = cur().reasoning;
    if (reasoning !== undefined && reasoning !== null) {
      const include = cur().include;
      if (include === undefined || include === null) edit().include = [ENCRYPTED_REASONING];
      else if (Array.isArray(include) && !include.includes(ENCRYPTED_REASONING))
        edit().include = [...(include as unknown[]), ENCRYPTED_REASONING];
    }
  }
  const input = cur().input;
  if (typeof input === 'string') {
    edit().input = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: input }] }];
  } else if (Array.isArray(input)) {
    const mapped = systemToDeveloper(input as unknown[]);
    if (mapped !== undefined) edit().input = mapped;
  }
  if (cur().instructions === undefined || cur().instructions === null) edit().instructions = '';
  return out;
}

/** A copy of `items` with `role: "system"` messages as `developer`, or undefined if there are none. */
function systemToDeveloper(items: readonly unknown[]): unknown[] | undefined {
  let out: unknown[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (typeof item !== 'object' || item === null) continue;
    const m = item as Record<string, unknown>;
    if (m.role !== 'system' || (m.type !== undefined && m.type !== 'message')) continue;
    out ??= [...items];
    out[i] = { ...m, role: 'developer' };
  }
  return out;
}
