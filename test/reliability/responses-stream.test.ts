/**
 * Issue 11, items 14, 20 and 22: the Responses stream keeps its promises to strict clients.
 * - 14: an upstream `sequence_number` that goes backwards or repeats is renumbered (content
 *   unchanged, one warning per stream), or, with `sequenceNumbers: fail`, ends the stream with one
 *   response.failed; a failover does not count the numbers of events the client never saw.
 * - 20: the response.failed the gateway writes describes the Response of the stream's
 *   response.created (id, created_at, model) on every route family, for error, drop, end and stall,
 *   with every field the SDKs' schemas require; in the queue's keepalive mode, the upstream's own
 *   events take the id the gateway announced.
 * - 22: a forwarded upstream response.failed is logged (and counted) as a failure with its code,
 *   and (errorEvent) announced by an error event like the gateway's own.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import YAML from 'yaml';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until, writeEach } from '../helpers/pool.js';
import { proxyConfig, type UpstreamSpec } from '../helpers/proxy-config.js';
import { deadline, parseSse, postJson, type RawResponse, type SseMessage } from '../helpers/raw.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  writeSseHead,
  type TestUpstream,
} from '../helpers/upstream.js';

const STREAM_BODY = { model: 'gpt-test', stream: true, input: 'hi' };
const FAMILIES = ['/v1/responses', '/responses', '/backend-api/codex/responses'];
/** What every Response object the gateway writes carries (openai-node's Response, the Vercel AI SDK's schemas). */
const RESPONSE_FIELDS = [
  'id',
  'object',
  'created_at',
  'status',
  'error',
  'incomplete_details',
  'instructions',
  'metadata',
  'model',
  'output',
  'parallel_tool_calls',
  'temperature',
  'tool_choice',
  'tools',
  'top_p',
  'usage',
];

const h = new Harness();

interface Options {
  plugin?: Record<string, unknown>;
  pool?: Record<string, unknown>;
  upstream?: Record<string, unknown>;
}

/** A gateway on the given upstreams, with responses-routes options and pool/upstream overrides. */
async function gateway(upstreams: (string | UpstreamSpec)[], opts: Options = {}): Promise<TestGateway> {
  const config = YAML.parse(proxyConfig(upstreams)) as {
    plugins: unknown[];
    pool?: unknown;
    upstreams: Record<string, unknown>[];
  };
  if (opts.plugin !== undefined) config.plugins[0] = { name: 'responses-routes', options: opts.plugin };
  if (opts.pool !== undefined) config.pool = opts.pool;
  if (opts.upstream !== undefined) Object.assign(config.upstreams[0]!, opts.upstream);
  return h.track(await startGateway(YAML.stringify(config)));
}

async function upstream(
  handler: (res: http.ServerResponse, input: string) => unknown,
): Promise<TestUpstream> {
  return h.upstream(async (_req, res, recorded) => {
    await handler(res, String(recorded.json?.input ?? ''));
  });
}

async function stream(g: TestGateway, path = '/v1/responses', input = 'hi'): Promise<RawResponse> {
  const r = await deadline(postJson(g.url, path, { ...STREAM_BODY, input }), 5000, 'the stream');
  assert.equal(r.status, 200, r.text());
  assert.equal(r.complete, true, 'the stream must end cleanly');
  return r;
}

const seqs = (events: SseMessage[]) => events.map((e) => e.json.sequence_number as number);
const withoutSeq = (e: SseMessage) => ({ ...e.json, sequence_number: undefined });

function assertIncreasing(events: SseMessage[]): void {
  const s = seqs(events);
  for (let i = 1; i < s.length; i++) assert.ok(s[i]! > s[i - 1]!, `sequence numbers: ${s.join(',')}`);
}

/** The one access line of the gateway (each test sends one request). */
async function accessLine(g: TestGateway): Promise<Record<string, unknown>> {
  const lines = () => g.logs.filter((l) => l.msg === 'request' || l.msg === 'request failed');
  await until(() => lines().length > 0, 'the access line');
  assert.equal(lines().length, 1, g.rawLogs());
  return lines()[0]!;
}

/** happyStream with its sequence numbers replaced by `numbers`, in order. */
function numbered(numbers: number[], id = 'resp_up1'): string[] {
  return happyStream(id).map((f, i) => f.replace(/"sequence_number":\d+/, `"sequence_number":${numbers[i]}`));
}

describe('reliability: Responses stream promises (issue 11 items 14, 20, 22)', () => {
  afterEach(() => h.cleanup());

  describe('item 14: sequence numbers', () => {
    // Repeated (2, 2), backwards (1 after 2; 3 after 7) and a jump: what a buggy upstream sends.
    const UPSTREAM_NUMBERS = [0, 1, 2, 2, 1, 7, 3, 8, 4];

    for (const validation of ['structural', 'json']) {
      it(`renumber (default, ${validation} validation): strictly increasing numbers, content unchanged, one warning`, async () => {
        const sent = numbered(UPSTREAM_NUMBERS);
        const up = await upstream(async (res) => {
          writeSseHead(res);
          await writeEach(res, sent);
          res.end();
        });
        const g = await gateway([up.url], { plugin: { eventValidation: validation } });
        const events = parseSse((await stream(g)).text());
        const upstreamEvents = parseSse(sent.join(''));
        assert.equal(events.length, upstreamEvents.length);
        assertIncreasing(events);
        // Numbers the upstream got right are kept; only the offending ones move.
        assert.deepEqual(seqs(events), [0, 1, 2, 3, 4, 7, 8, 9, 10]);
        assert.deepEqual(events.map(withoutSeq), upstreamEvents.map(withoutSeq));
        assert.deepEqual(
          events.map((e) => e.event),
          upstreamEvents.map((e) => e.event),
        );
        const warnings = g.logs.filter((l) => String(l.msg).includes('sequence_number out of order'));
        assert.equal(warnings.length, 1, 'one warning per stream, not per event');
        assert.equal(warnings[0]!.sequenceNumber, 2);
        assert.equal(warnings[0]!.after, 2);
        assert.equal((await accessLine(g)).outcome, 'ok');
      });
    }

    it('fail: the stream ends with one response.failed naming the numbers', async () => {
      const sent = numbered([0, 1, 2, 3, 4, 3, 6, 7, 8]);
      const up = await upstream(async (res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        res.end();
      });
      const g = await gateway([up.url], { plugin: { sequenceNumbers: 'fail' } });
      const r = await stream(g);
      const events = parseSse(r.text());
      assert.ok(r.text().startsWith(sent.slice(0, 5).join('')), 'the events before it, unchanged');
      assert.deepEqual(
        events.slice(5).map((e) => e.event),
        ['error', 'response.failed'],
      );
      assertIncreasing(events);
      const failed = events.at(-1)!.json.response as { error: { code: string; message: string } };
      assert.equal(failed.error.message, 'upstream sent sequence_number 3 after 4');
      assert.equal(failed.error.code, 'upstream_error');
      const line = await accessLine(g);
      assert.equal(line.outcome, 'error');
      assert.equal((line.error as Record<string, unknown>).code, 'UPSTREAM_MALFORMED');
    });

    it('a failover before output forgets the numbers of the events the client never saw', async () => {
      const overloaded = frame('response.failed', 2, {
        response: responseObject('resp_A', 'failed', {
          error: { code: 'server_is_overloaded', message: 'busy' },
        }),
      });
      const a = await upstream((res) => {
        writeSseHead(res);
        res.end(happyStream('resp_A').slice(0, 2).join('') + overloaded);
      });
      const sentB = happyStream('resp_B');
      const b = await upstream((res) => {
        writeSseHead(res);
        res.end(sentB.join(''));
      });
      const g = await gateway([
        { url: a.url, name: 'A', priority: 1 },
        { url: b.url, name: 'B', priority: 2 },
      ]);
      const r = await stream(g);
      assert.equal(a.requests.length, 1);
      assert.equal(r.text(), sentB.join(''), "B's stream, byte for byte: nothing renumbered");
    });
  });

  describe("item 20: the gateway's response.failed describes the stream's Response", () => {
    const CREATED_AT = 1_712_345_678;
    /** The upstream's Response, announced in response.created. */
    const announced = (family: string) =>
      responseObject(`resp_up_${family.length}`, 'in_progress', {
        created_at: CREATED_AT,
        model: 'gpt-test-2025-01-01',
        instructions: 'be brief',
      });
    const opening = (family: string) => [
      frame('response.created', 0, { response: announced(family) }),
      frame('response.in_progress', 1, { response: announced(family) }),
      frame('response.output_text.delta', 2, {
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: 'Hel',
      }),
    ];
    const FAULTS: Record<
      string,
      { message: RegExp; act(res: http.ServerResponse, family: string): unknown }
    > = {
      error: {
        message: /the model fell over/,
        act: (res, family) =>
          res.write(
            opening(family).join('') +
              `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 3, code: 'server_error', message: 'the model fell over' })}\n\n`,
          ),
      },
      drop: {
        message: /upstream connection lost/,
        act: (res, family) => res.write(opening(family).join(''), () => (res.socket as Socket).destroy()),
      },
      end: {
        message: /without a terminal event/,
        act: (res, family) => res.end(opening(family).join('')),
      },
      stall: {
        message: /stalled/,
        act: (res, family) => res.write(opening(family).join('')),
      },
    };

    for (const family of FAMILIES) {
      for (const [fault, spec] of Object.entries(FAULTS)) {
        it(`${family}, ${fault}: same id, created_at and model as response.created; every required field`, async () => {
          const up = await upstream((res) => {
            writeSseHead(res);
            spec.act(res, family);
          });
          const g = await gateway([{ url: up.url, timeouts: { idle: '300ms' } }]);
          const events = parseSse((await stream(g, family)).text());
          assert.deepEqual(
            events.map((e) => e.event),
            [
              'response.created',
              'response.in_progress',
              'response.output_text.delta',
              'error',
              'response.failed',
            ],
          );
          const created = events[0]!.json.response as Record<string, unknown>;
          const failed = events.at(-1)!.json.response as Record<string, unknown>;
          assert.equal(failed.id, created.id);
          assert.equal(failed.created_at, CREATED_AT);
          assert.equal(failed.model, 'gpt-test-2025-01-01');
          assert.equal(failed.instructions, 'be brief', 'the rest of the Response is the same one');
          assert.equal(failed.status, 'failed');
          assert.match((failed.error as { message: string }).message, spec.message);
          for (const field of RESPONSE_FIELDS) assert.ok(field in failed, `response.failed lacks ${field}`);
          assert.deepEqual(failed.output, []);
        });
      }
    }

    it("an upstream that never announced its Response: the gateway's own, complete, with the request's model", async () => {
      const up = await upstream((res) => {
        writeSseHead(res);
        res.write(
          frame('response.output_text.delta', 0, {
            item_id: 'msg_1',
            output_index: 0,
            content_index: 0,
            delta: 'Hel',
          }),
          () => (res.socket as Socket).destroy(),
        );
      });
      const g = await gateway([up.url]);
      const r = await stream(g);
      const failed = parseSse(r.text()).at(-1)!.json.response as Record<string, unknown>;
      assert.equal(failed.id, 'resp_' + String(r.headers['x-request-id']).replace(/-/g, ''));
      assert.equal(typeof failed.created_at, 'number');
      assert.equal(failed.model, 'gpt-test');
      assert.equal(failed.object, 'response');
      for (const field of RESPONSE_FIELDS) assert.ok(field in failed, `response.failed lacks ${field}`);
    });

    describe('queue keepalive mode: the gateway announced the Response before the upstream did', () => {
      /** The first request holds the only slot; the second is queued, then reaches the upstream. */
      async function queued(second: (res: http.ServerResponse) => void): Promise<SseMessage[]> {
        const open: http.ServerResponse[] = [];
        let arrived: (() => void) | undefined;
        const up = await upstream((res, input) => {
          writeSseHead(res);
          if (input === 'second') return second(res);
          open.push(res);
          arrived?.();
        });
        const g = await gateway([up.url], {
          pool: { queue: { mode: 'keepalive', keepaliveInterval: '50ms', waitTimeout: '10s' } },
          upstream: { maxConcurrency: 1 },
        });
        const firstArrived = new Promise<void>((r) => (arrived = r));
        const first = postJson(g.url, '/v1/responses', { ...STREAM_BODY, input: 'first' });
        await firstArrived;
        const secondDone = postJson(g.url, '/v1/responses', { ...STREAM_BODY, input: 'second' });
        // The second waits, with the gateway's response.created and keepalives, then gets the slot.
        await until(() => g.gw.pool.queue.length > 0, 'the second request queued');
        await writeEach(open[0]!, happyStream('resp_first'));
        open[0]!.end();
        await first;
        const r = await deadline(secondDone, 5000, 'the queued stream');
        assert.equal(r.status, 200);
        const events = parseSse(r.text());
        assert.equal(events[0]!.event, 'response.created');
        assert.equal((events[0]!.json.response as { status: string }).status, 'queued');
        assertIncreasing(events);
        return events;
      }

      it("the upstream's in_progress and completed take the announced id and created_at", async () => {
        const events = await queued((res) => res.end(happyStream('resp_upstream').join('')));
        const announcedResponse = events[0]!.json.response as Record<string, unknown>;
        const described = events.filter((e) => typeof e.json.response === 'object');
        assert.deepEqual(
          described.map((e) => e.event),
          ['response.created', 'response.in_progress', 'response.completed'],
        );
        for (const e of described) {
          const response = e.json.response as Record<string, unknown>;
          assert.equal(response.id, announcedResponse.id, e.event);
          assert.equal(response.created_at, announcedResponse.created_at, e.event);
        }
        const completed = events.at(-1)!.json.response as { output: unknown[]; status: string };
        assert.equal(completed.status, 'completed');
        assert.deepEqual(completed.output, [MESSAGE_ITEM]);
        for (const field of RESPONSE_FIELDS) assert.ok(field in announcedResponse, `created lacks ${field}`);
      });

      it('a drop after output: response.failed with the announced id', async () => {
        const events = await queued((res) =>
          res.write(happyStream('resp_upstream').slice(0, 5).join(''), () =>
            (res.socket as Socket).destroy(),
          ),
        );
        const announcedResponse = events[0]!.json.response as Record<string, unknown>;
        const failed = events.at(-1)!;
        assert.equal(failed.event, 'response.failed');
        const response = failed.json.response as Record<string, unknown>;
        assert.equal(response.id, announcedResponse.id);
        assert.equal(response.created_at, announcedResponse.created_at);
        assert.equal(response.model, announcedResponse.model);
      });
    });
  });

  describe('item 22: a forwarded upstream response.failed counts as a failure', () => {
    const upstreamFailed = (seq: number) =>
      frame('response.failed', seq, {
        response: responseObject('resp_up1', 'failed', {
          error: { code: 'invalid_prompt', message: 'the prompt was refused' },
        }),
      });

    it('after output: forwarded, announced by an error event; the access line says outcome error with the upstream code', async () => {
      const sent = [...happyStream().slice(0, 5), upstreamFailed(5)];
      const up = await upstream(async (res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        res.end();
      });
      const g = await gateway([up.url]);
      const r = await stream(g);
      assert.ok(r.text().startsWith(sent.slice(0, 5).join('')));
      const events = parseSse(r.text());
      assert.deepEqual(
        events.slice(5).map((e) => [e.event, e.json.sequence_number]),
        [
          ['error', 5],
          ['response.failed', 6],
        ],
      );
      assert.equal(events[5]!.json.code, 'invalid_prompt');
      assert.equal(events[5]!.json.message, 'the prompt was refused');
      // The upstream's own event, only renumbered after the error event.
      assert.deepEqual(withoutSeq(events[6]!), withoutSeq(parseSse(sent[5]!)[0]!));
      const line = await accessLine(g);
      assert.equal(line.status, 200);
      assert.equal(line.outcome, 'error');
      assert.equal(line.msg, 'request failed');
      assert.deepEqual(line.error, {
        code: 'UPSTREAM_STREAM_ERROR',
        errorCode: 'invalid_prompt',
        message: 'the prompt was refused',
      });
    });

    it('errorEvent: false: forwarded byte for byte, still logged as a failure', async () => {
      const sent = [...happyStream().slice(0, 5), upstreamFailed(5)];
      const up = await upstream(async (res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        res.end();
      });
      const g = await gateway([up.url], { plugin: { errorEvent: false } });
      const r = await stream(g);
      assert.equal(r.text(), sent.join(''), 'the upstream response.failed goes out as received');
      const line = await accessLine(g);
      assert.equal(line.outcome, 'error');
      assert.equal((line.error as Record<string, unknown>).errorCode, 'invalid_prompt');
    });

    it('before output, not retryable: forwarded, and logged as a failure too', async () => {
      const sent = [...happyStream().slice(0, 2), upstreamFailed(2)];
      const up = await upstream((res) => {
        writeSseHead(res);
        res.end(sent.join(''));
      });
      const g = await gateway([up.url]);
      const events = parseSse((await stream(g)).text());
      assert.deepEqual(
        events.map((e) => e.event),
        ['response.created', 'response.in_progress', 'error', 'response.failed'],
      );
      const line = await accessLine(g);
      assert.equal(line.outcome, 'error');
      assert.equal((line.error as Record<string, unknown>).errorCode, 'invalid_prompt');
    });
  });
});
