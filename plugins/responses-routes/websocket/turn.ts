/**
 * One turn: a `response.create` run through the pipeline, whose output becomes frames. The event
 * stream's events go out one text frame each (the SSE `data` JSON, unchanged); an HTTP error before
 * any output becomes one `error` frame with its status and headers. The turn remembers what the
 * next turn may chain from: the completed response's id and its output items.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { WebSocket } from 'ws';
import {
  parseFrame,
  SseFramer,
  type ExchangeSink,
  type InternalExchange,
  type SseEvent,
} from '../../../core/index.js';
import { errorFrameFromHttp } from './frames.js';

/** An error body is small; what is beyond this is not needed for the frame. */
const MAX_ERROR_BODY = 64 * 1024;

export class Turn implements ExchangeSink {
  exchange: InternalExchange | undefined;
  /** The id of the response that completed (undefined: it failed, or has not ended). */
  completedId: string | undefined;
  /** The completed response's output items, in order. */
  output: unknown[] = [];
  /** The frame that ends the turn went out (the pipeline may still be finishing the request). */
  ended = false;
  /** Output items are collected (only while the next turn could chain from this one). */
  private readonly keepOutput: boolean;
  private framer: SseFramer | undefined;
  private status = 200;
  private headers: OutgoingHttpHeaders = {};
  /** The body of an answer that is not an event stream (an error), collected whole. */
  private body: string[] | undefined;
  private bodyChars = 0;
  /** `data` said the client is full: the relay waits for `drained`. */
  private waiting = false;
  private readonly sent = (err?: Error): void => this.onSent(err);

  constructor(
    private readonly ws: WebSocket,
    private readonly maxBufferedBytes: number,
    private readonly maxEventChars: number,
    keepOutput: boolean,
  ) {
    this.keepOutput = keepOutput;
  }

  head(status: number, headers: OutgoingHttpHeaders): void {
    this.status = status;
    this.headers = headers;
    const type = headers['content-type'];
    if (status < 400 && typeof type === 'string' && type.startsWith('text/event-stream'))
      this.framer = new SseFramer(this.maxEventChars);
    else this.body = [];
  }

  data(chunk: string | Buffer): boolean {
    if (this.body !== undefined) {
      if (this.bodyChars < MAX_ERROR_BODY) {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        this.body.push(text);
        this.bodyChars += text.length;
      }
      return true;
    }
    this.framer!.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, this);
    return this.hasRoom();
  }

  /** One SSE frame from the framer: its data is the frame the client gets. */
  frame(raw: string): void {
    const ev = parseFrame(raw);
    // Comments (keepalives of the SSE transport) and the `[DONE]` sentinel mean nothing here.
    if (ev === undefined || ev.data.length === 0 || ev.data === '[DONE]') return;
    this.observe(ev);
    this.send(ev.data);
  }

  end(): void {
    if (this.body !== undefined) {
      const text = this.body.join('');
      this.body = undefined;
      this.ended = true;
      const status = this.status >= 400 ? this.status : 502;
      this.send(
        errorFrameFromHttp(
          status,
          this.headers,
          this.status >= 400 ? text : 'The gateway answered this turn without an event stream',
        ),
      );
      return;
    }
    this.framer?.rest(this);
  }

  /** The core cut the turn where the protocol has no ending (a client that stopped reading). */
  abort(): void {
    this.ws.terminate();
  }

  private observe(ev: SseEvent): void {
    const type = ev.event ?? typeOf(ev.data);
    if (type === 'response.output_item.done') {
      if (!this.keepOutput) return;
      const item = parse(ev.data)?.item;
      if (item !== undefined) this.output.push(item);
    } else if (type === 'response.completed') {
      this.ended = true;
      const response = parse(ev.data)?.response as { id?: unknown; output?: unknown } | undefined;
      if (typeof response?.id === 'string') this.completedId = response.id;
      // A backend that sends no item events still lists the output in the Response.
      if (this.keepOutput && this.output.length === 0 && Array.isArray(response?.output))
        this.output = response.output as unknown[];
    } else if (type === 'response.failed' || type === 'response.incomplete') {
      this.ended = true;
    }
  }

  private send(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text, this.sent);
  }

  private hasRoom(): boolean {
    // Queued for compression or in the socket's buffer: what the client has not taken yet.
    if (this.ws.bufferedAmount <= this.maxBufferedBytes) return true;
    this.waiting = true;
    return false;
  }

  private onSent(err?: Error): void {
    // Each written frame's callback looks again: the last one runs once everything is out.
    if (err !== undefined) return;
    if (this.waiting && this.ws.bufferedAmount <= this.maxBufferedBytes / 2) {
      this.waiting = false;
      this.exchange?.drained();
    }
  }
}

function typeOf(data: string): string | undefined {
  const type = parse(data)?.type;
  return typeof type === 'string' ? type : undefined;
}

function parse(data: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(data) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
