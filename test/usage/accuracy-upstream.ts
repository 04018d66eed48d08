/**
 * A loopback Responses upstream for the usage-accuracy test. Each request says what to do in its
 * `metadata.plan`; every answer that carries a `usage` is tallied under the request id the gateway
 * forwarded, so the test knows exactly what the upstreams reported and which one answered.
 */
import type http from 'node:http';
import {
  frame,
  MESSAGE_ITEM,
  responseObject,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

/** What the upstream does with one request. */
export type Plan =
  /** Answers (a stream or JSON, as asked) with a random usage. */
  | 'ok'
  /** A stream that ends in `response.failed` after output, with a usage (what it consumed). */
  | 'failed-stream'
  /** 400 with an OpenAI error body: no failover, no usage. */
  | 'bad-request'
  /** The first attempt (on whichever upstream) gets a 500, the next one answers: one failover. */
  | 'failover';

export interface Reported {
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
  total: number;
  /** The upstream that sent the answer with this usage. */
  account: string;
}

/** Usage the upstreams reported, by request id, and which ids already failed once. */
export class UsageLedger {
  readonly reported = new Map<string, Reported>();
  private readonly failedOnce = new Set<string>();
  private seed = 12345;

  /** A deterministic pseudo-random usage (the test's numbers are reproducible). */
  private usage(): Record<string, unknown> & { total_tokens: number } {
    const next = () => (this.seed = (this.seed * 1103515245 + 12345) % 2147483648);
    const input = 1 + (next() % 5000);
    const cached = next() % (input + 1);
    const output = 1 + (next() % 3000);
    const reasoning = next() % (output + 1);
    return {
      input_tokens: input,
      input_tokens_details: { cached_tokens: cached },
      output_tokens: output,
      output_tokens_details: { reasoning_tokens: reasoning },
      total_tokens: input + output,
    };
  }

  /** The handler of one upstream named `account`. */
  handler(account: string): UpstreamHandler {
    return (req, res, recorded) => {
      const id = String(req.headers['x-request-id'] ?? '');
      const body = recorded.json ?? {};
      const plan = ((body.metadata as { plan?: string } | undefined)?.plan ?? 'ok') as Plan;
      const compact = (req.url ?? '').endsWith('/compact');
      if (plan === 'bad-request')
        return sendError(res, 400, 'invalid_request_error', 'bad request for the test');
      if (plan === 'failover' && !this.failedOnce.has(id)) {
        this.failedOnce.add(id);
        return sendError(res, 500, 'server_error', 'the first attempt fails');
      }
      const usage = this.usage();
      this.reported.set(id, {
        input: usage.input_tokens as number,
        cachedInput: (usage.input_tokens_details as { cached_tokens: number }).cached_tokens,
        output: usage.output_tokens as number,
        reasoning: (usage.output_tokens_details as { reasoning_tokens: number }).reasoning_tokens,
        total: usage.total_tokens,
        account,
      });
      if (compact) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ id: 'cmp_1', object: 'response.compaction', created_at: 1, output: [], usage }),
        );
        return;
      }
      // A `metadata` member named usage after the real one: the gateway must not take it for the count.
      const extra = { output: [MESSAGE_ITEM], usage, metadata: { usage: 'not a count' } };
      if (body.stream !== true) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(responseObject(`resp_${account}`, 'completed', extra)));
        return;
      }
      writeSseHead(res);
      const r = `resp_${account}`;
      res.write(frame('response.created', 0, { response: responseObject(r, 'in_progress') }));
      res.write(
        frame('response.output_text.delta', 1, {
          item_id: 'msg_1',
          output_index: 0,
          content_index: 0,
          delta: 'Hi',
        }),
      );
      if (plan === 'failed-stream') {
        const error = { code: 'server_error', message: 'the upstream failed mid-stream' };
        res.end(frame('response.failed', 2, { response: responseObject(r, 'failed', { ...extra, error }) }));
        return;
      }
      res.end(frame('response.completed', 2, { response: responseObject(r, 'completed', extra) }));
    };
  }
}

function sendError(res: http.ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type, param: null, code: null } }));
}
