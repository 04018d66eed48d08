/** Shapes shared by the core and plugins. */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestContext } from './context.js';
import type { GatewayError } from './errors.js';

/** What `matchRoute` resolves a request to. */
export interface RouteMatch {
  /** e.g. `responses`, `responses.compact`, `models`, `dashboard`. */
  kind: string;
  /** Proxied to an upstream (true) or answered locally by a `request` tap (false). */
  proxy: boolean;
  /** Who may call it: `client` needs a client key; `none` leaves auth to the route's own plugin. */
  auth: 'client' | 'none';
  /** Path suffix the upstream should receive, relative to its base URL (e.g. `/responses`). */
  upstreamPath?: string;
  /** The body is JSON and is parsed once (for `model`, `stream`, failover replay). */
  jsonBody?: boolean;
  /** The protocol requires a terminal event: an EOF without one is a failure. */
  requiresTerminalEvent?: boolean;
  /**
   * A unary endpoint: a JSON answer is valid even when the client sent `stream: true`. Otherwise, on
   * a `jsonBody` route, a streamed request answered without an event stream is an upstream error.
   */
  unary?: boolean;
  /**
   * The protocol's frames for a streamed request that waits for a slot in the queue's keepalive
   * mode: `open` starts the stream, `tick` keeps an idle client alive. Without them, waits hold headers.
   */
  waitingFrames?: { open(ctx: RequestContext): string; tick(ctx: RequestContext): string };
}

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

/** How the core should react to a failure; the `classifyError` hook decides. */
export interface Classification {
  /** `switch`: try another upstream; `same`: retry this one; `refresh`: refresh credentials then retry the same; `none`: give up. */
  retry: 'switch' | 'same' | 'refresh' | 'none';
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
}
