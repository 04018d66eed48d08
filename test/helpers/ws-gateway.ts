/**
 * For the Responses-over-WebSocket tests: gateway YAML with the responses-routes `websocket` option,
 * Responses streams whose text and output item a test chooses (so each turn's answer is its own),
 * and a few readers of frames and access lines.
 */
import type http from 'node:http';
import type { TestGateway } from './gateway.js';
import { gatewayConfig, upstreamKey, type GatewayConfigOptions } from './proxy-config.js';
import type { Harness } from './harness.js';
import { ResponsesWsClient, type Frame } from './responses-ws.js';
import { SERVED_BY } from './scripted-upstream.js';
import { frame, responseObject, USAGE, writeSseHead, type UpstreamHandler } from './upstream.js';

export interface WsUpstreamSpec {
  name: string;
  /** The upstream server's origin; `/v1` is appended. */
  url: string;
  maxConcurrency?: number;
  priority?: number;
  timeouts?: { connect?: string; firstByte?: string; idle?: string; total?: string };
}

export interface WsConfigOptions extends Omit<GatewayConfigOptions, 'upstreams' | 'plugins'> {
  /** The responses-routes `websocket` option (merged over nothing: the plugin's defaults apply). */
  websocket?: Record<string, unknown>;
}

/** Gateway YAML: openai upstreams, the default plugins with `websocket` options for responses-routes. */
export function wsConfig(upstreams: WsUpstreamSpec[], o: WsConfigOptions = {}): string {
  const { websocket, ...rest } = o;
  return gatewayConfig({
    ...rest,
    upstreams: upstreams.map(({ url, ...spec }) => ({
      type: 'openai',
      baseUrl: url + '/v1',
      apiKey: upstreamKey(spec.name),
      ...spec,
    })),
    plugins: [
      { name: 'responses-routes', options: { websocket: websocket ?? {} } },
      'request-id',
      'error-codes',
    ],
  });
}

/** An assistant message output item saying `text`. */
export function messageItem(id: string, text: string): Record<string, unknown> {
  return {
    id,
    type: 'message',
    status: 'completed',
    role: 'assistant',
    content: [{ type: 'output_text', text, annotations: [] }],
  };
}

/**
 * A complete Responses stream (SSE frames) for response `id` whose one message says `deltas`
 * joined, one delta event each; the item id is `msg_<id>`.
 */
export function textStream(id: string, deltas: string[]): string[] {
  const itemId = `msg_${id}`;
  const text = deltas.join('');
  const item = messageItem(itemId, text);
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  let seq = 0;
  return [
    frame('response.created', seq++, { response: responseObject(id, 'in_progress') }),
    frame('response.in_progress', seq++, { response: responseObject(id, 'in_progress') }),
    frame('response.output_item.added', seq++, {
      output_index: 0,
      item: { ...item, status: 'in_progress', content: [] },
    }),
    frame('response.content_part.added', seq++, {
      ...at,
      part: { type: 'output_text', text: '', annotations: [] },
    }),
    ...deltas.map((delta) => frame('response.output_text.delta', seq++, { ...at, delta })),
    frame('response.output_text.done', seq++, { ...at, text }),
    frame('response.content_part.done', seq++, {
      ...at,
      part: { type: 'output_text', text, annotations: [] },
    }),
    frame('response.output_item.done', seq++, { output_index: 0, item }),
    frame('response.completed', seq++, {
      response: responseObject(id, 'completed', { output: [item], usage: USAGE }),
    }),
  ];
}

/** Answers with `textStream(id, deltas)` in one write, naming itself in `x-served-by`. */
export function textAnswer(name: string, id: string, deltas: string[]): UpstreamHandler {
  return (_req: http.IncomingMessage, res: http.ServerResponse) => {
    writeSseHead(res, { [SERVED_BY]: name });
    res.end(textStream(id, deltas).join(''));
  };
}

/** A user message input item. */
export function userItem(text: string): Record<string, unknown> {
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}

/** The frames' types, in order. */
export const typesOf = (frames: Frame[]): string[] => frames.map((f) => f.type);

/** The `response` object of a frame that has one. */
export function responseOf(f: Frame | undefined): Record<string, unknown> {
  const r = f?.response;
  if (typeof r !== 'object' || r === null) throw new Error(`no response in ${JSON.stringify(f)}`);
  return r as Record<string, unknown>;
}

/** The access lines (one per request or turn) the gateway wrote so far. */
export function accessLines(g: TestGateway): Record<string, unknown>[] {
  return g.logs.filter((l) => l.msg === 'request' || l.msg === 'request failed');
}

/** Opens a client socket that the harness closes after the test. */
export async function connectTracked(
  h: Harness,
  url: string,
  opts: Parameters<typeof ResponsesWsClient.connect>[1] = {},
): Promise<ResponsesWsClient> {
  const ws = await ResponsesWsClient.connect(url, opts);
  h.track({ close: async () => void (await ws.close()) });
  return ws;
}
