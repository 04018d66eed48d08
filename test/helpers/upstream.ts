/** A scriptable upstream on 127.0.0.1, port 0. Each test says how it answers. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json: Record<string, unknown> | undefined;
}

export type UpstreamHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  recorded: RecordedRequest,
) => void | Promise<void>;

export interface TestUpstream {
  url: string;
  server: http.Server;
  requests: RecordedRequest[];
  /** Resolves on the next request's arrival (after its body). */
  nextRequest(): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export async function startUpstream(handler: UpstreamHandler): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  const waiters: ((r: RecordedRequest) => void)[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let json: Record<string, unknown> | undefined;
      try {
        json = body.length > 0 ? (JSON.parse(body.toString()) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      const recorded: RecordedRequest = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body,
        json,
      };
      requests.push(recorded);
      waiters.shift()?.(recorded);
      void Promise.resolve(handler(req, res, recorded)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    nextRequest: () => new Promise((r) => waiters.push(r)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** One SSE frame. `sequence_number` is added from `seq`. */
export function frame(type: string, seq: number, extra: Record<string, unknown> = {}): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq, ...extra })}\n\n`;
}

export function responseObject(
  id: string,
  status: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: 1_700_000_000,
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    metadata: {},
    model: 'gpt-test',
    output: [],
    parallel_tool_calls: true,
    temperature: 1,
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    usage: null,
    ...extra,
  };
}

export const MESSAGE_ITEM = {
  id: 'msg_1',
  type: 'message',
  status: 'completed',
  role: 'assistant',
  content: [{ type: 'output_text', text: 'Hello!', annotations: [] }],
};

export const USAGE = {
  input_tokens: 10,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 2,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 12,
};

/** A complete, well-formed Responses stream saying "Hello!". */
export function happyStream(id = 'resp_up1'): string[] {
  return [
    frame('response.created', 0, { response: responseObject(id, 'in_progress') }),
    frame('response.in_progress', 1, { response: responseObject(id, 'in_progress') }),
    frame('response.output_item.added', 2, {
      output_index: 0,
      item: { ...MESSAGE_ITEM, status: 'in_progress', content: [] },
    }),
    frame('response.content_part.added', 3, {
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '', annotations: [] },
    }),
    frame('response.output_text.delta', 4, {
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      delta: 'Hello!',
    }),
    frame('response.output_text.done', 5, {
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      text: 'Hello!',
    }),
    frame('response.content_part.done', 6, {
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: 'Hello!', annotations: [] },
    }),
    frame('response.output_item.done', 7, { output_index: 0, item: MESSAGE_ITEM }),
    frame('response.completed', 8, {
      response: responseObject(id, 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
    }),
  ];
}

export function writeSseHead(res: http.ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
}
