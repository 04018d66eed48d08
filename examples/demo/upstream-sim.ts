/**
 * A simulated OpenAI Responses upstream on 127.0.0.1 for the demo: it streams made-up text at a
 * believable pace, reports token usage, and misbehaves on purpose when its profile says so (a 429 with
 * Retry-After, a connection dropped mid-stream, a 500). No model, no network beyond loopback.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { responseObject } from '../../test/helpers/upstream.js';

export interface SimProfile {
  /** Time to the response head, ms: [min, max]. */
  ttfbMs: [number, number];
  /** Output words per second: [min, max]. */
  wordsPerSecond: [number, number];
  /** Chance of a 429 with `Retry-After` (seconds drawn from `retryAfterS`). */
  rateLimit?: number;
  retryAfterS?: [number, number];
  /** Chance that a stream's connection drops after some output. */
  drop?: number;
  /** Chance of a 500 before any output. */
  serverError?: number;
}

export interface SimUpstream {
  name: string;
  /** The origin; the gateway's `baseUrl` is this plus `/v1`. */
  url: string;
  /** Requests answered so far, by outcome. */
  stats: Record<'ok' | 'rate_limited' | 'dropped' | 'server_error', number>;
  close(): Promise<void>;
}

const WORDS = (
  'the gateway forwards each request to one upstream from a pool of accounts and ends every stream ' +
  'with a terminal event that carries the real reason so clients never see a silent hang while the ' +
  'dashboard shows requests attempts failovers cooldowns latency and tokens as they happen'
).split(' ');

const rand = (min: number, max: number): number => min + Math.random() * (max - min);
const randInt = (min: number, max: number): number => Math.floor(rand(min, max + 1));
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

/** The Response object the SDK requires (one definition for tests, bench and demo), timestamped now. */
function response(id: string, model: string, status: string, extra: Record<string, unknown> = {}) {
  return responseObject(id, status, { model, created_at: Math.floor(Date.now() / 1000), ...extra });
}

function message(text: string, status = 'completed') {
  return {
    id: 'msg_' + Math.random().toString(36).slice(2, 12),
    type: 'message',
    status,
    role: 'assistant',
    content: status === 'completed' ? [{ type: 'output_text', text, annotations: [] }] : [],
  };
}

function usage(inputChars: number, outputWords: number) {
  // Pretend each request carries some context, as a coding agent's would.
  const input = Math.round(inputChars / 4) + randInt(400, 24_000);
  const output = Math.round(outputWords * 1.3);
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: Math.round(input * rand(0, 0.8)) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startSimUpstream(name: string, profile: SimProfile): Promise<SimUpstream> {
  const stats: SimUpstream['stats'] = { ok: 0, rate_limited: 0, dropped: 0, server_error: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void answer(req, res, Buffer.concat(chunks).toString('utf8')).catch(() => res.destroy());
    });
  });

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, text: string): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'POST' || !/\/responses(\/compact)?$/.test(path)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error', code: null } }));
      return;
    }
    let body: { model?: unknown; stream?: unknown; input?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Treated as an empty request.
    }
    const model = typeof body.model === 'string' ? body.model : 'gpt-5.5';
    const inputChars = JSON.stringify(body.input ?? '').length;
    let gone = false;
    res.on('close', () => (gone = true));
    await sleep(rand(...profile.ttfbMs));
    if (gone) return;

    if (Math.random() < (profile.rateLimit ?? 0)) {
      stats.rate_limited++;
      const wait = randInt(...(profile.retryAfterS ?? [5, 20]));
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(wait) });
      res.end(
        JSON.stringify({
          error: {
            message: `Rate limit reached for ${model} on requests per min (RPM): Limit 60, Used 60. Please try again in ${wait}s.`,
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        }),
      );
      return;
    }
    if (Math.random() < (profile.serverError ?? 0)) {
      stats.server_error++;
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: 'The server had an error while processing your request.',
            type: 'server_error',
            param: null,
            code: null,
          },
        }),
      );
      return;
    }

    const id = 'resp_' + Math.random().toString(36).slice(2, 14);
    const words = Array.from({ length: randInt(12, 140) }, () => pick(WORDS));
    const speed = rand(...profile.wordsPerSecond);
    const compact = path.endsWith('/compact');

    if (body.stream !== true || compact) {
      await sleep((words.length / speed) * 1000 * (compact ? 0.3 : 1));
      if (gone) return;
      stats.ok++;
      const out = message(words.join(' '));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          compact
            ? {
                id,
                object: 'response.compaction',
                created_at: Math.floor(Date.now() / 1000),
                output: [out],
                usage: usage(inputChars, words.length),
              }
            : response(id, model, 'completed', {
                output: [out],
                usage: usage(inputChars, words.length),
              }),
        ),
      );
      return;
    }

    let seq = 0;
    const frame = (type: string, extra: Record<string, unknown>) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...extra })}\n\n`;
    const msg = message('', 'in_progress');
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(frame('response.created', { response: response(id, model, 'in_progress') }));
    res.write(frame('response.in_progress', { response: response(id, model, 'in_progress') }));
    res.write(frame('response.output_item.added', { output_index: 0, item: msg }));
    res.write(
      frame('response.content_part.added', {
        item_id: msg.id,
        output_index: 0,
        content_index: 0,
        part: { type: 'output_text', text: '', annotations: [] },
      }),
    );
    const dropAt = Math.random() < (profile.drop ?? 0) ? randInt(2, Math.max(2, words.length - 1)) : -1;
    for (let i = 0; i < words.length; i += 4) {
      if (gone) return;
      if (dropAt >= 0 && i >= dropAt) {
        stats.dropped++;
        res.socket?.destroy();
        return;
      }
      const delta = (i === 0 ? '' : ' ') + words.slice(i, i + 4).join(' ');
      res.write(
        frame('response.output_text.delta', { item_id: msg.id, output_index: 0, content_index: 0, delta }),
      );
      await sleep((4 / speed) * 1000);
    }
    if (gone) return;
    const full = words.join(' ');
    const done = message(full);
    done.id = msg.id;
    stats.ok++;
    res.end(
      frame('response.output_text.done', { item_id: msg.id, output_index: 0, content_index: 0, text: full }) +
        frame('response.content_part.done', {
          item_id: msg.id,
          output_index: 0,
          content_index: 0,
          part: { type: 'output_text', text: full, annotations: [] },
        }) +
        frame('response.output_item.done', { output_index: 0, item: done }) +
        frame('response.completed', {
          response: response(id, model, 'completed', {
            output: [done],
            usage: usage(inputChars, words.length),
          }),
        }),
    );
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
