/**
 * The Responses API plugin: detects its six POST routes, lists models, serves Responses over
 * WebSocket on the same routes (or answers the upgrade with 426, so Codex uses HTTP at once),
 * guarantees every stream ends in the protocol's own terminal event, gives a non-streaming client
 * of a stream-only upstream the Response object built from the stream, and logs and counts answers
 * from another model than the one requested.
 */
import { z } from 'zod';
import {
  createStateKey,
  Stage,
  type PluginContext,
  type RequestContext,
  type TapgatePlugin,
} from '../../core/index.js';
import { ModelCheck } from './model-check.js';
import { listModels } from './models.js';
import { isResponsesPath, isResponsesRoute, matchResponsesRoute, MODELS, RESPONSES } from './routes.js';
import { onResponsesEvent, type EventOptions } from './stream-events.js';
import { newAttempt } from './stream-state.js';
import { collectIfUnary, collectorOf } from './stream-to-json.js';
import { terminateResponsesStream } from './terminal.js';
import { usageInChunks, usageInText } from './usage.js';
import { ResponsesWebSocket, sessionOf } from './websocket/front-end.js';
import { websocketSchema, type WebSocketOptions } from './websocket/options.js';

const NAME = 'responses-routes';

/** Each request keeps the options it started with: a reload never changes a stream midway. */
const STARTED = createStateKey<EventOptions | undefined>(NAME + '.options', () => undefined);

const UPGRADE_REFUSAL = JSON.stringify({
  error: {
    message: 'WebSocket transport is not supported; use HTTP POST',
    type: 'invalid_request_error',
    param: null,
    code: 'websocket_not_supported',
  },
});

const optionsSchema = z.strictObject({
  /**
   * Also send an `error` event (flat and nested fields) just before a `response.failed`, the
   * gateway's own or a forwarded upstream one: clients whose stream converter has no case for
   * `response.failed` (LangChain) then throw the real reason instead of returning the partial text.
   */
  errorEvent: z.boolean().default(true),
  /** `structural`: a cut or garbled event is caught without parsing every event; `json`: parse all. */
  eventValidation: z.enum(['structural', 'json']).default('structural'),
  /** An upstream `sequence_number` that does not increase: `renumber` it, or `fail` the stream. */
  sequenceNumbers: z.enum(['renumber', 'fail']).default('renumber'),
  /** Responses over WebSocket on the same routes (Codex's default transport). */
  websocket: websocketSchema.prefault({}),
});
type Options = z.output<typeof optionsSchema>;

export default class ResponsesRoutesPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: optionsSchema };

  /** The options new requests use; a reload replaces them. */
  private current: EventOptions;
  /** The same for a turn on a WebSocket: no `error` event (the `response.failed` frame says it all). */
  private currentWs: EventOptions;
  private websocketOptions: WebSocketOptions;
  private websocket: ResponsesWebSocket | undefined;

  constructor(options: Options) {
    this.current = eventOptionsOf(options);
    this.currentWs = { ...this.current, errorEvent: false };
    this.websocketOptions = options.websocket;
  }

  reload(options: Options): void {
    this.current = eventOptionsOf(options);
    this.currentWs = { ...this.current, errorEvent: false };
    this.websocketOptions = options.websocket;
  }

  /** The options of the request: those in force when its first attempt started. */
  private optionsOf(ctx: RequestContext): EventOptions {
    let o = ctx.peekState(STARTED);
    if (o === undefined) {
      o = ctx.transport === 'websocket' ? this.currentWs : this.current;
      ctx.setState(STARTED, o);
    }
    return o;
  }

  async close(): Promise<void> {
    await this.websocket?.close();
  }

  apply(gateway: PluginContext): void {
    const hooks = gateway.hooks;
    const modelCheck = new ModelCheck(gateway.logger.child({ plugin: NAME }), gateway.metrics);
    hooks.matchRoute.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) =>
      matchResponsesRoute(ctx.method, ctx.pathname),
    );

    hooks.request.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) => {
      if (ctx.route !== MODELS) return undefined;
      return { status: 200, body: listModels(gateway.pool) };
    });

    hooks.upstreamAttempt.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) => {
      if (isResponsesRoute(ctx.route)) {
        this.optionsOf(ctx);
        newAttempt(ctx);
      }
    });

    const types = gateway.upstreamTypes;
    hooks.upstreamResponse.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, upstream, response) => {
      if (isResponsesRoute(ctx.route)) collectIfUnary(ctx, upstream, response, types);
    });
    hooks.streamEvent.tap({ name: NAME, stage: Stage.DEFAULT }, (ev, ctx) => {
      if (!isResponsesRoute(ctx.route)) return ev;
      const collector = collectorOf(ctx);
      const eventOptions = this.optionsOf(ctx);
      const out =
        collector === undefined
          ? onResponsesEvent(ev, ctx, eventOptions)
          : collector.onEvent(ev, ctx, eventOptions);
      // The terminal event's Response carries the usage (a failed one too, for what it consumed).
      if (out.terminal === true && out.fail === undefined) ctx.usage = usageInText(out.data) ?? ctx.usage;
      modelCheck.onEvent(out, ctx);
      return out;
    });
    hooks.responseBody.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, chunks) => {
      if (!isResponsesRoute(ctx.route)) return;
      ctx.usage = usageInChunks(chunks);
      modelCheck.onBody(ctx, chunks);
    });

    hooks.terminateStream.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, error) =>
      isResponsesRoute(ctx.route)
        ? terminateResponsesStream(ctx, error, this.optionsOf(ctx).errorEvent)
        : undefined,
    );

    const websocket = new ResponsesWebSocket(gateway, () => this.websocketOptions);
    this.websocket = websocket;
    hooks.selectUpstream.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx, candidates) =>
      ctx.transport === 'websocket' ? websocket.select(ctx, candidates) : undefined,
    );
    hooks.upstreamAttempt.tap({ name: NAME + ':websocket', stage: Stage.DEFAULT }, (ctx, upstream) => {
      if (ctx.transport === 'websocket') websocket.attempted(ctx, upstream);
    });
    hooks.upstreamResponse.tap({ name: NAME + ':websocket', stage: Stage.DEFAULT }, (ctx, _u, response) => {
      if (ctx.transport === 'websocket')
        sessionOf(ctx)?.upstreamTurnState(response.headers['x-codex-turn-state']);
    });
    hooks.closing.tap({ name: NAME, stage: Stage.DEFAULT }, () => websocket.leave());

    hooks.upgrade.tap({ name: NAME, stage: Stage.DEFAULT }, (request) => {
      if (!isResponsesPath(request.pathname)) return undefined;
      // Compaction is unary: HTTP only.
      const turns = matchResponsesRoute('POST', request.pathname) === RESPONSES;
      if (turns && websocket.upgrade(request, request.clientName ?? '')) return true;
      const socket = request.socket;
      socket.end(
        'HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\nconnection: close\r\n' +
          `content-length: ${Buffer.byteLength(UPGRADE_REFUSAL)}\r\n\r\n${UPGRADE_REFUSAL}`,
      );
      return true;
    });
  }
}

function eventOptionsOf(options: Options): EventOptions {
  return {
    validation: options.eventValidation,
    sequenceNumbers: options.sequenceNumbers,
    errorEvent: options.errorEvent,
  };
}
