/**
 * The gateway's error taxonomy. Every failure the core can meet is one named class with a fixed
 * HTTP status, OpenAI error `type` and internal code, so classifiers and writers switch on the
 * class (or `code`) instead of parsing messages. The classes fall into a few groups (client fault,
 * gateway fault, pool refusal, upstream connect failure, upstream broken response), so the default
 * classification is a table over groups (core/defaults/classify.ts). Errors are immutable: the
 * client-visible view (mapped code, scrubbed message) is a derived copy (`derive`).
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { formatDuration } from '../config/units.js';

export type ErrorPhase = 'admission' | 'connect' | 'headers' | 'body' | 'stream' | 'internal';

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Seconds the client should wait (becomes `Retry-After`). */
  retryAfter?: number;
  /** The request parameter at fault (OpenAI `error.param`). */
  param?: string | null;
  phase?: ErrorPhase;
  /** Client-visible `error.code` (before `mapErrorCode`); the `type` when not given. */
  errorCode?: string | null;
}

export class GatewayError extends Error {
  /** Stable machine code, e.g. `UPSTREAM_IDLE_TIMEOUT`. */
  readonly code: string;
  readonly status: number;
  /** OpenAI error `type`, e.g. `server_error`, `invalid_request_error`. */
  readonly type: string;
  /** Client-visible `error.code` before the `mapErrorCode` hook runs. */
  readonly errorCode: string | null;
  readonly retryAfter: number | undefined;
  readonly param: string | null;
  readonly phase: ErrorPhase;
  declare readonly message: string;

  constructor(code: string, status: number, type: string, message: string, opts: GatewayErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = status;
    this.type = type;
    this.errorCode = opts.errorCode === undefined ? type : opts.errorCode;
    this.retryAfter = opts.retryAfter;
    this.param = opts.param ?? null;
    this.phase = opts.phase ?? 'internal';
  }
}

/** What a derived error may differ in: the view the client gets. */
export interface ErrorView {
  errorCode?: string | null;
  message?: string;
  /** UpstreamHttpError only. */
  body?: Buffer;
}

/**
 * A copy of `error` (same class, same fields, same stack and cause) with `view`'s fields in place:
 * how the gateway changes what an error says without changing the error a tap may still hold.
 */
export function derive<E extends GatewayError>(error: E, view: ErrorView): E {
  const copy = Object.create(
    Object.getPrototypeOf(error) as object,
    Object.getOwnPropertyDescriptors(error),
  ) as E;
  if (view.errorCode !== undefined) Object.defineProperty(copy, 'errorCode', { value: view.errorCode });
  if (view.message !== undefined) Object.defineProperty(copy, 'message', { value: view.message });
  if (view.body !== undefined && error instanceof UpstreamHttpError)
    Object.defineProperty(copy, 'body', { value: view.body });
  return copy;
}

// The groups. Classification (core/defaults/classify.ts) is a table over them.

/** The request or the client is at fault: another upstream would not help. */
export class ClientFault extends GatewayError {}
/** The gateway itself failed or refused (a bug, its own limits, shutdown): no upstream is at fault. */
export class GatewayFault extends GatewayError {}
/** The pool had no upstream to offer (none serves the model, all cooling, all busy). */
export class PoolRefusal extends GatewayError {}
/** No connection to the upstream, or it died before any response: the account's host is unwell. */
export class UpstreamConnectFailure extends GatewayError {}
/** The upstream connected but its response failed: timed out, cut, malformed or reported failing. */
export class UpstreamBrokenResponse extends GatewayError {}

/** The group classes, which are never thrown themselves. */
export const ERROR_GROUPS: readonly (typeof GatewayError)[] = [
  ClientFault,
  GatewayFault,
  PoolRefusal,
  UpstreamConnectFailure,
  UpstreamBrokenResponse,
];

/** Each class is branded with its literal `code`, so `instanceof` narrows between them. */
type ErrorClass<C extends string, G extends typeof GatewayError> = new (
  message?: string,
  opts?: GatewayErrorOptions,
) => InstanceType<G> & { readonly code: C };

/** Declares one named error class in a group (in the style of @fastify/error). */
function defineError<C extends string, G extends typeof GatewayError>(
  group: G,
  name: string,
  code: C,
  status: number,
  type: string,
  defaultMessage: string,
  errorCode?: string,
): ErrorClass<C, G> {
  const base: typeof GatewayError = group;
  const cls = class extends base {
    constructor(message: string = defaultMessage, opts: GatewayErrorOptions = {}) {
      const withCode =
        errorCode === undefined || opts.errorCode !== undefined ? opts : { ...opts, errorCode };
      super(code, status, type, message, withCode);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls as unknown as ErrorClass<C, G>;
}

// Client-side faults.
export const InvalidRequestError = defineError(
  ClientFault,
  'InvalidRequestError',
  'INVALID_REQUEST',
  400,
  'invalid_request_error',
  'Invalid request',
  'invalid_request',
);
export const AuthenticationError = defineError(
  ClientFault,
  'AuthenticationError',
  'UNAUTHENTICATED',
  401,
  'authentication_error',
  'Missing or invalid API key',
  'invalid_api_key',
);
export const PermissionDeniedError = defineError(
  ClientFault,
  'PermissionDeniedError',
  'PERMISSION_DENIED',
  403,
  'permission_error',
  'Permission denied',
  'permission_denied',
);
export const NotFoundError = defineError(
  ClientFault,
  'NotFoundError',
  'NOT_FOUND',
  404,
  'invalid_request_error',
  'Not found',
  'not_found',
);
export const BodyTooLargeError = defineError(
  ClientFault,
  'BodyTooLargeError',
  'BODY_TOO_LARGE',
  413,
  'invalid_request_error',
  'Request body too large',
  'request_too_large',
);
export const UnsupportedMediaTypeError = defineError(
  ClientFault,
  'UnsupportedMediaTypeError',
  'UNSUPPORTED_MEDIA_TYPE',
  415,
  'invalid_request_error',
  'Content-Type must be application/json',
  'unsupported_media_type',
);
export const ClientAbortError = defineError(
  ClientFault,
  'ClientAbortError',
  'CLIENT_ABORT',
  499,
  'client_error',
  'Client closed the connection',
);

/** Built where it happens (core/attempt.ts), with the configured bound in its message. */
export const ClientStalledError = defineError(
  ClientFault,
  'ClientStalledError',
  'CLIENT_STALLED',
  408,
  'client_error',
  'Client stopped reading the response (server.sendTimeout)',
);

// Pool and scheduling.

export const NoUpstreamError = defineError(
  PoolRefusal,
  'NoUpstreamError',
  'NO_UPSTREAM',
  503,
  'server_error',
  'No upstream can serve this request',
  'no_upstream_available',
);
export const AllUpstreamsCoolingError = defineError(
  PoolRefusal,
  'AllUpstreamsCoolingError',
  'ALL_UPSTREAMS_COOLING',
  429,
  'rate_limit_error',
  'Every upstream that serves this model is rate limited',
);
export const QueueFullError = defineError(
  PoolRefusal,
  'QueueFullError',
  'QUEUE_FULL',
  429,
  'rate_limit_error',
  'Too many pending requests',
);

// Transport faults, reply-from style: refused/DNS → 503, timeouts → 504, resets → 502.
export const UpstreamConnectionRefusedError = defineError(
  UpstreamConnectFailure,
  'UpstreamConnectionRefusedError',
  'UPSTREAM_CONNECTION_REFUSED',
  503,
  'upstream_error',
  'Upstream refused the connection',
);
export const UpstreamDnsError = defineError(
  UpstreamConnectFailure,
  'UpstreamDnsError',
  'UPSTREAM_DNS',
  503,
  'upstream_error',
  'Upstream host could not be resolved',
);
export const UpstreamConnectTimeoutError = defineError(
  UpstreamConnectFailure,
  'UpstreamConnectTimeoutError',
  'UPSTREAM_CONNECT_TIMEOUT',
  504,
  'upstream_error',
  'Timed out connecting to the upstream',
);
export const UpstreamFirstByteTimeoutError = defineError(
  UpstreamBrokenResponse,
  'UpstreamFirstByteTimeoutError',
  'UPSTREAM_FIRST_BYTE_TIMEOUT',
  504,
  'upstream_error',
  'Timed out waiting for the upstream to respond',
);
export const UpstreamIdleTimeoutError = defineError(
  UpstreamBrokenResponse,
  'UpstreamIdleTimeoutError',
  'UPSTREAM_IDLE_TIMEOUT',
  504,
  'upstream_error',
  'Upstream stream stalled: no data within the idle timeout',
);
export const UpstreamResetError = defineError(
  UpstreamConnectFailure,
  'UpstreamResetError',
  'UPSTREAM_RESET',
  502,
  'upstream_error',
  'Upstream connection reset before a response',
);
export const UpstreamConnectionLostError = defineError(
  UpstreamBrokenResponse,
  'UpstreamConnectionLostError',
  'UPSTREAM_CONNECTION_LOST',
  502,
  'server_error',
  'upstream connection lost',
);
export const UpstreamIncompleteStreamError = defineError(
  UpstreamBrokenResponse,
  'UpstreamIncompleteStreamError',
  'UPSTREAM_INCOMPLETE_STREAM',
  502,
  'server_error',
  'upstream closed the stream without a terminal event',
);
export const UpstreamMalformedError = defineError(
  UpstreamBrokenResponse,
  'UpstreamMalformedError',
  'UPSTREAM_MALFORMED',
  502,
  'upstream_error',
  'Upstream sent a malformed response',
);
export const UpstreamTooLargeError = defineError(
  UpstreamBrokenResponse,
  'UpstreamTooLargeError',
  'UPSTREAM_FRAME_TOO_LARGE',
  502,
  'upstream_error',
  'Upstream sent an event larger than the frame limit',
);
/** The gateway's own bound on a whole request (proxy.timeouts.total): the upstream was alive, just not done. */
export const RequestTotalTimeoutError = defineError(
  GatewayFault,
  'RequestTotalTimeoutError',
  'REQUEST_TOTAL_TIMEOUT',
  504,
  'server_error',
  'Request exceeded the total time limit (proxy.timeouts.total)',
  'request_timeout',
);
export const InternalError = defineError(
  GatewayFault,
  'InternalError',
  'INTERNAL',
  500,
  'server_error',
  'Internal gateway error',
);
/** The gateway's own resources ran out (file descriptors, socket memory): not the upstream's fault. */
export const GatewayResourceError = defineError(
  GatewayFault,
  'GatewayResourceError',
  'GATEWAY_RESOURCES_EXHAUSTED',
  503,
  'server_error',
  'The gateway is out of resources; retry shortly',
  'server_is_overloaded',
);
/** Too many failed authentications from the client's address: refused before any key is checked. */
export const AuthThrottledError = defineError(
  ClientFault,
  'AuthThrottledError',
  'AUTH_THROTTLED',
  429,
  'rate_limit_error',
  'Too many failed authentication attempts from this address',
  'too_many_auth_failures',
);
/**
 * A client key over one of its own limits (`auth.keys[].limits`): requests or tokens in a window, or
 * requests at once. OpenAI's shape; built by core/limits/key-limits.ts with the numbers in its message.
 */
export const KeyRateLimitError = defineError(
  ClientFault,
  'KeyRateLimitError',
  'KEY_RATE_LIMITED',
  429,
  'rate_limit_error',
  'Rate limit reached for this API key',
  'rate_limit_exceeded',
);
/** A client key asked for a model its `limits.models` does not list: refused before any upstream. */
export const ModelNotAllowedError = defineError(
  ClientFault,
  'ModelNotAllowedError',
  'MODEL_NOT_ALLOWED',
  403,
  'invalid_request_error',
  'This API key may not use this model',
  'model_not_allowed',
);
export const ShuttingDownError = defineError(
  GatewayFault,
  'ShuttingDownError',
  'SHUTTING_DOWN',
  503,
  'server_error',
  'Gateway is shutting down',
  'server_shutting_down',
);

/** The upstream answered with an HTTP error status; its body and headers are kept for pass-through. */
export class UpstreamHttpError extends GatewayError {
  readonly upstreamHeaders: IncomingHttpHeaders;
  /** What the client gets is a derived copy with secrets scrubbed out of it (`derive`). */
  readonly body: Buffer;
  constructor(
    status: number,
    headers: IncomingHttpHeaders,
    body: Buffer,
    message: string,
    type: string,
    errorCode: string | null,
  ) {
    super('UPSTREAM_HTTP_' + status, status, type, message, { phase: 'headers', errorCode });
    this.upstreamHeaders = headers;
    this.body = body;
  }
}
Object.defineProperty(UpstreamHttpError, 'name', { value: 'UpstreamHttpError' });

/** The upstream reported a failure inside a 200 stream (`event: error` or similar). */
export class UpstreamStreamError extends UpstreamBrokenResponse {
  constructor(message: string, type: string, errorCode: string | null, status = 502, retryAfter?: number) {
    super('UPSTREAM_STREAM_ERROR', status, type, message, { phase: 'stream', retryAfter, errorCode });
  }
}
Object.defineProperty(UpstreamStreamError, 'name', { value: 'UpstreamStreamError' });

const RESOURCE: Record<string, string> = {
  EMFILE: 'file descriptors',
  ENFILE: 'file descriptors system-wide',
  ENOBUFS: 'socket buffer space',
  ENOMEM: 'memory',
};

/** The total-limit error, naming the limit that applied. */
export function requestTotalTimeout(ms: number, phase: ErrorPhase): GatewayError {
  return new RequestTotalTimeoutError(
    `Request exceeded the total time limit of ${formatDuration(ms)} (proxy.timeouts.total)`,
    { phase },
  );
}

/** Turns a Node socket error into the matching typed error. */
export function fromSocketError(err: NodeJS.ErrnoException, phase: ErrorPhase): GatewayError {
  if (err instanceof GatewayError) return err;
  const opts = { cause: err, phase };
  switch (err.code) {
    case 'ECONNREFUSED':
      return new UpstreamConnectionRefusedError(undefined, opts);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UpstreamDnsError(undefined, opts);
    // The gateway could not open a socket: its own limit, never the upstream's failure.
    case 'EMFILE':
    case 'ENFILE':
    case 'ENOBUFS':
    case 'ENOMEM':
      return new GatewayResourceError(
        `The gateway is out of ${RESOURCE[err.code]} (${err.code}): it could not open a connection to the upstream; retry shortly`,
        { ...opts, retryAfter: 1 },
      );
    // undici's names for what Node's http client calls a timeout, an overflow, a parse error.
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new UpstreamConnectTimeoutError(undefined, opts);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return httpParseError('HPE_HEADER_OVERFLOW', opts);
    default:
      if (err.code?.startsWith('HPE_') === true) return httpParseError(err.code, opts);
      if (err.code !== undefined && TLS_FAILURE.test(err.code))
        return new UpstreamResetError(
          `Upstream TLS handshake failed (${err.code.slice(0, 64)}): ${err.message.slice(0, 200)}`,
          opts,
        );
      // undici's parser error carries no code for most reasons.
      if (err.name === 'HTTPParserError') return httpParseError('HPE_INVALID_RESPONSE', opts);
      return phase === 'stream' || phase === 'body'
        ? new UpstreamConnectionLostError(undefined, opts)
        : new UpstreamResetError(undefined, opts);
  }
}

/**
 * A certificate the gateway does not trust, a name it does not match, or no TLS where TLS was asked
 * for (Node's `ERR_TLS_*`/`ERR_SSL_*`, OpenSSL's verification codes): said as such, not as a reset.
 */
const TLS_FAILURE =
  /^(?:ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$|EPROTO$)/;

/**
 * Node's HTTP parser refused the upstream's answer (`HPE_*`): an upstream fault with a real cause,
 * not a reset. The parser's text and the offending bytes are not repeated.
 */
function httpParseError(code: string, opts: GatewayErrorOptions): GatewayError {
  const message =
    code === 'HPE_HEADER_OVERFLOW'
      ? `upstream response headers are larger than the ${Math.round(http.maxHeaderSize / 1024)} KB limit`
      : `upstream sent a malformed HTTP response (${code.slice(0, 64)})`;
  return new UpstreamMalformedError(message, opts);
}

export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new InternalError(undefined, { cause: err });
}

/** The OpenAI error envelope. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openAIErrorBody(
  message: string,
  type: string,
  code: string | null,
  param: string | null = null,
): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}
