/**
 * A non-streaming client on a stream-only upstream (a type registered with `streamsOnly`, e.g.
 * codex): the events are collected (none reaches the client) and the stream's outcome becomes one
 * answer. `response.completed` (or `.incomplete`) is
 * sent as the JSON Response object; when its `output` is empty it is rebuilt from the
 * `response.output_item.done` items, by `output_index`. `response.failed` and `error` become an HTTP
 * error. An EOF without a terminal event is the core's incomplete-stream error (502).
 */
import {
  createStateKey,
  UpstreamMalformedError,
  type GatewayError,
  type RequestContext,
  type SseEvent,
  type Upstream,
  type UpstreamResponseHead,
  type UpstreamTypeRegistry,
} from '../../core/index.js';
import { RESPONSES } from './routes.js';
import { onResponsesEvent, type EventOptions } from './stream-events.js';
import { streamFailureError } from './stream-failure.js';

/** The current attempt's collector, if any (set per upstream response). */
const COLLECTOR = createStateKey<ResponseCollector | undefined>(
  'responses-routes.collector',
  () => undefined,
);

/**
 * At each upstream response: a collector when the client asked for JSON on `/responses` and a
 * stream-only upstream answered with a stream, else none (a new attempt forgets the last one's).
 * The client is then told JSON: the core chose SSE framing from the upstream's content type.
 */
export function collectIfUnary(
  ctx: RequestContext,
  upstream: Upstream,
  response: UpstreamResponseHead,
  types: UpstreamTypeRegistry,
): void {
  if (ctx.peekState(COLLECTOR) !== undefined) ctx.setState(COLLECTOR, undefined);
  if (ctx.route !== RESPONSES || ctx.stream || ctx.json === undefined) return;
  const headers = ctx.responseHeaders;
  if (headers === undefined || (response.statusCode ?? 0) >= 400) return;
  if (!(response.headers['content-type'] ?? '').startsWith('text/event-stream')) return;
  if (types.get(upstream.type)?.streamsOnly !== true) return;
  ctx.setState(COLLECTOR, new ResponseCollector());
  headers['content-type'] = 'application/json';
}

/** The collector of this attempt, when its answer is built from the stream. */
export function collectorOf(ctx: RequestContext): ResponseCollector | undefined {
  return ctx.peekState(COLLECTOR);
}

export class ResponseCollector {
  private readonly items = new Map<number, unknown>();

  /**
   * One upstream event: collected, and checked as on any Responses stream. A failure the stream
   * reports is the verdict (the HTTP error a unary call would have got); else the stream's checks
   * (framing, terminal events) decide.
   */
  onEvent(ev: SseEvent, ctx: RequestContext, opts: EventOptions): SseEvent {
    const failure = this.collect(ev);
    if (failure !== undefined) {
      ev.fail = failure;
      return ev;
    }
    return onResponsesEvent(ev, ctx, opts);
  }

  /** Every event is dropped except the final JSON body; a reported failure is returned. */
  private collect(ev: SseEvent): GatewayError | undefined {
    ev.drop = true;
    if (ev.data.length === 0) return undefined;
    let obj: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(ev.data);
      if (typeof parsed !== 'object' || parsed === null) return undefined;
      obj = parsed as Record<string, unknown>;
    } catch {
      return undefined; // the stream's checks fail it as malformed
    }
    const type = typeof obj.type === 'string' ? obj.type : ev.event;
    switch (type) {
      case 'response.output_item.done':
        if (typeof obj.output_index === 'number' && typeof obj.item === 'object' && obj.item !== null)
          this.items.set(obj.output_index, obj.item);
        break;
      case 'response.completed':
      case 'response.incomplete': {
        const response = obj.response;
        if (typeof response !== 'object' || response === null)
          return new UpstreamMalformedError(`upstream sent ${type} without a response object`, {
            phase: 'stream',
          });
        ev.raw = JSON.stringify(this.complete(response as Record<string, unknown>));
        ev.drop = false;
        ev.terminal = true;
        break;
      }
      case 'response.failed': {
        const response = obj.response as Record<string, unknown> | undefined;
        const error = response?.error as Record<string, unknown> | undefined;
        return streamFailureError(isObject(error) ? error : undefined, 'upstream reported response.failed');
      }
      case 'error': {
        // Flat (`{code,message}`) or nested (`{error:{code,message}}`).
        const nested = isObject(obj.error) ? (obj.error as Record<string, unknown>) : undefined;
        return streamFailureError({ ...obj, ...nested }, 'upstream reported an error in the stream');
      }
    }
    return undefined;
  }

  /** The Response object, its `output` rebuilt from the done items when the terminal event left it empty. */
  private complete(response: Record<string, unknown>): Record<string, unknown> {
    const output = response.output;
    if ((Array.isArray(output) && output.length > 0) || this.items.size === 0) return response;
    const rebuilt = [...this.items.entries()].sort((a, b) => a[0] - b[0]).map(([, item]) => item);
    return { ...response, output: rebuilt };
  }
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
