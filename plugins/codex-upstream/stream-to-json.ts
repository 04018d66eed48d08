/**
 * A non-streaming client on a stream-only upstream: the events are collected (none reaches the
 * client) and the stream's outcome becomes one answer. `response.completed` (or `.incomplete`) is
 * sent as the JSON Response object; when its `output` is empty it is rebuilt from the
 * `response.output_item.done` items, by `output_index`. `response.failed` and `error` become an HTTP
 * error. An EOF without a terminal event is the core's incomplete-stream error (502).
 */
import { UpstreamMalformedError, type GatewayError, type SseEvent } from '../../core/index.js';
import { streamFailureError } from './errors.js';

export class ResponseCollector {
  private readonly items = new Map<number, unknown>();
  /** The error to report for the event being handled, re-applied after the Responses plugin's tap. */
  failure: GatewayError | undefined;

  /** Handles one upstream event; every event is dropped except the final JSON body. */
  onEvent(ev: SseEvent): SseEvent {
    ev.drop = true;
    this.failure = undefined;
    if (ev.data.length === 0) return ev;
    let obj: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(ev.data);
      if (typeof parsed !== 'object' || parsed === null) return ev;
      obj = parsed as Record<string, unknown>;
    } catch {
      return ev; // the Responses plugin fails the stream as malformed
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
        if (typeof response !== 'object' || response === null) {
          this.fail(
            ev,
            new UpstreamMalformedError(`upstream sent ${type} without a response object`, {
              phase: 'stream',
            }),
          );
          break;
        }
        ev.raw = JSON.stringify(this.complete(response as Record<string, unknown>));
        ev.drop = false;
        ev.terminal = true;
        break;
      }
      case 'response.failed': {
        const response = obj.response as Record<string, unknown> | undefined;
        const error = response?.error as Record<string, unknown> | undefined;
        this.fail(
          ev,
          streamFailureError(isObject(error) ? error : undefined, 'upstream reported response.failed'),
        );
        break;
      }
      case 'error': {
        // Flat (`{code,message}`) or nested (`{error:{code,message}}`).
        const nested = isObject(obj.error) ? (obj.error as Record<string, unknown>) : undefined;
        this.fail(ev, streamFailureError({ ...obj, ...nested }, 'upstream reported an error in the stream'));
        break;
      }
    }
    return ev;
  }

  private fail(ev: SseEvent, error: GatewayError): void {
    ev.fail = error;
    this.failure = error;
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
