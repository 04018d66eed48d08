/**
 * The core's fallback `classifyError` (README "Failover") as data: the first rule whose class (or
 * group, see core/kernel/errors.ts) the error is an instance of decides. Exceptions come before the
 * group they belong to; an error no rule names is not retried.
 */
import {
  ClientFault,
  GatewayFault,
  GatewayResourceError,
  PoolRefusal,
  UpstreamBrokenResponse,
  UpstreamConnectFailure,
  UpstreamHttpError,
  UpstreamStreamError,
  UpstreamTooLargeError,
  type GatewayError,
} from '../kernel/errors.js';
import { limitSignal } from '../pool/cooldown-signals.js';
import { tryAgainMs } from '../pool/retry-after.js';
import type { Classification } from '../kernel/types.js';

/** A verdict, given the error and the configured soft cooldown (`pool.transientCooldown`). */
type Verdict<E extends GatewayError> = (error: E, transientMs: number) => Classification;
type Rule = readonly [abstract new (...args: never[]) => GatewayError, Verdict<GatewayError>];

function rule<E extends GatewayError>(cls: abstract new (...args: never[]) => E, verdict: Verdict<E>): Rule {
  return [cls, verdict as Verdict<GatewayError>];
}

const NO_RETRY: Classification = { retry: 'none' };
const none: Verdict<GatewayError> = () => NO_RETRY;
/** Another upstream; this one's model cools softly. */
const soft: Verdict<GatewayError> = (_error, ms) => ({
  retry: 'switch',
  cooldownMs: ms,
  cooldownScope: 'model',
  cooldownKind: 'transient',
});
/** Another upstream; this one's whole account cools softly (its host or credentials failed). */
const softAccount: Verdict<GatewayError> = (_error, ms) => ({
  retry: 'switch',
  cooldownMs: ms,
  cooldownScope: 'account',
  cooldownKind: 'transient',
});
/** Another upstream; this one cools hard for `ms`. */
function rateLimited(ms: number, scope: 'model' | 'account'): Classification {
  return { retry: 'switch', cooldownMs: ms, cooldownScope: scope, cooldownKind: 'rate_limit' };
}

/** Request faults: the same request fails on any account, so it never rotates. */
const REQUEST_FAULT_STATUS = new Set([400, 404, 413, 415, 422]);
const REQUEST_FAULT_CODES = new Set([
  'context_length_exceeded',
  'previous_response_not_found',
  'invalid_prompt',
  'invalid_request_error',
]);
const OVERLOADED = new Set(['server_is_overloaded', 'slow_down']);
/** Account-wide quota with no reset time given: rest the account this long. */
const QUOTA_COOLDOWN_MS = 15 * 60_000;

type HttpRule = readonly [(status: number, code: string) => boolean, Verdict<UpstreamHttpError>];

/** An upstream's HTTP error, by status (and code): the first rule that holds decides, else none. */
const HTTP_RULES: readonly HttpRule[] = [
  [(status, code) => REQUEST_FAULT_STATUS.has(status) || REQUEST_FAULT_CODES.has(code), none],
  [(status, code) => status === 429 || (status === 503 && !OVERLOADED.has(code)), limited],
  [(status) => status === 401 || status === 403, softAccount],
  [(status) => status === 408 || status >= 500, soft],
];

const byStatus: Verdict<UpstreamHttpError> = (error, ms) => {
  const code = error.errorCode ?? '';
  for (const [holds, verdict] of HTTP_RULES) if (holds(error.status, code)) return verdict(error, ms);
  return NO_RETRY;
};

/** A 429 (or a 503 that is not overload): hard, for as long as the headers or body say. */
function limited(error: UpstreamHttpError, ms: number): Classification {
  const signal = limitSignal(error.upstreamHeaders, error.body);
  const wait = signal.waitMs ?? (signal.accountWide ? QUOTA_COOLDOWN_MS : ms);
  return rateLimited(wait, signal.accountWide ? 'account' : 'model');
}

/** A failure inside a 200 stream, before anything reached the client (pre-output hold). */
const streamFailure: Verdict<UpstreamStreamError> = (error, ms) => {
  const code = error.errorCode ?? '';
  if (OVERLOADED.has(code)) return soft(error, ms);
  if (
    code === 'rate_limit_exceeded' ||
    error.type === 'rate_limit_error' ||
    error.type === 'tokens' ||
    error.type === 'requests'
  )
    return rateLimited(Math.ceil(tryAgainMs(error.message) ?? ms), 'model');
  return NO_RETRY;
};

const RULES: readonly Rule[] = [
  // The gateway could not open a socket: another upstream would need one too, and none is at fault.
  rule(GatewayResourceError, none),
  rule(GatewayFault, none),
  rule(ClientFault, none),
  rule(PoolRefusal, none),
  rule(UpstreamHttpError, byStatus),
  rule(UpstreamStreamError, streamFailure),
  // Over the gateway's own proxy.maxEventBytes: README's "anything else", not retried.
  rule(UpstreamTooLargeError, none),
  rule(UpstreamConnectFailure, softAccount),
  // Reached only when nothing went to the client yet, so another upstream may still answer in full.
  rule(UpstreamBrokenResponse, soft),
];

export function classify(error: GatewayError, transientCooldownMs: number): Classification {
  for (const [cls, verdict] of RULES) if (error instanceof cls) return verdict(error, transientCooldownMs);
  return NO_RETRY;
}
