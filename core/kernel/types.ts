/** Shapes shared by the core and plugins. */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { UpstreamPool } from '../pool/pool.js';
import type { RouteMatch } from './context.js';
import type { GatewayError } from './errors.js';

export type { RouteMatch } from './context.js';

/** A local answer from a `request` tap. Returning one ends the chain. */
export type Reply =
  | { status: number; headers?: OutgoingHttpHeaders; body?: string | Buffer | object }
  /** The tap wrote the response itself. */
  | typeof HANDLED;

export const HANDLED = Symbol.for('tapgate.handled');

/** The request tapgate sends upstream; built by the `prepareUpstreamRequest` waterfall. */
export interface OutgoingRequest {
  /** Absolute upstream URL. Only upstream plugins set its origin; never the client. */
  url: URL;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** Raw bytes, or an object a plugin changed (serialised once when sent). */
  body: Buffer | Record<string, unknown>;
}

/** An upstream answer's status line and headers (any status), as `upstreamResponse` taps see them. */
export interface UpstreamResponseHead {
  readonly statusCode: number;
  /** Lower-case names, Node's shape: `set-cookie` an array, other repeated fields joined. */
  readonly headers: IncomingHttpHeaders;
}

/** How the core should react to a failure; the `classifyError` hook decides. */
export interface Classification {
  /**
   * `switch`: try another upstream; `same`: retry this one (if it can still take the request; a
   * plugin that must do something first, like a credential refresh, notes it in its request state);
   * `none`: give up.
   */
  retry: 'switch' | 'same' | 'none';
  /** Cool the upstream for this long (ms). */
  cooldownMs?: number;
  /** `model`: only the request's model cools; `account`: every model of the upstream. */
  cooldownScope?: 'model' | 'account';
  /** `rate_limit` (default for 429) is hard; `transient` (5xx, network) yields when nothing else is left. */
  cooldownKind?: 'rate_limit' | 'transient';
}

/** One parsed Server-Sent Event as it passes through `streamEvent`. */
export interface SseEvent {
  /** The `event:` field, if present. */
  event: string | undefined;
  /** The joined `data:` lines. */
  data: string;
  /** The frame exactly as received (including its blank-line terminator). Set to undefined to re-serialise. */
  raw: string | undefined;
  /** Taps set this to drop the event. */
  drop?: boolean;
  /** Taps set this on events that may wait for the first content event (pre-output hold). */
  hold?: boolean;
  /** Taps set this when the event ends the stream (forwarded, then the response ends). */
  terminal?: boolean;
  /** Taps set this to end the stream with `terminateStream` instead of forwarding the event. */
  fail?: GatewayError;
  /**
   * Taps set this on a terminal event that reports a failure (an upstream `response.failed`): it is
   * forwarded as received, and the request is recorded as failed with this error (access line, finish).
   */
  failure?: GatewayError;
}

export type { TokenUsage } from './token-usage.js';

export type OutcomeKind = 'ok' | 'error' | 'client_abort';

/** What `finish` reports, once per request. */
export interface Outcome {
  kind: OutcomeKind;
  status: number;
  error: GatewayError | undefined;
  durationMs: number;
}

/** An upgrade request (WebSocket) offered to the `upgrade` hook. */
export interface UpgradeRequest {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  route: RouteMatch | undefined;
  pathname: string;
  /** The name of the client key the upgrade authenticated with (undefined: no keys, or `auth: 'none'`). */
  clientName: string | undefined;
}

/** What `ready` reports, once: the gateway accepts connections. */
export interface GatewayReady {
  /** The upstream pool, built (plugins' upstream types are all registered by now). */
  pool: UpstreamPool;
  /** The bound address. */
  address: AddressInfo;
  /** The URL clients use, e.g. http://127.0.0.1:8787. */
  url: string;
}

/** What `closing` reports, once: shutdown began, no new connection is accepted. */
export interface GatewayClosing {
  /** How long in-flight requests may still run before they are ended. */
  drainMs: number;
}
