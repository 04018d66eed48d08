/**
 * Issue 11, item 19: third-party clients through the gateway, on the three route families, against
 * a loopback upstream with the conformance faults (upstream `event: error`, a drop mid-stream, an
 * EOF without a terminal event, a stall past the idle timeout, an upstream response.failed, the happy
 * path). LangChain JS (`ChatOpenAI` with `useResponsesApi`) has no case for `response.failed`: it
 * throws the real reason only because of the `error` event the gateway sends first (errorEvent, on by
 * default). The Vercel AI SDK (`streamText` with `fullStream`/`onError`, `generateText`) reads both.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText } from 'ai';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import {
  frame,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  happyStream,
  type TestUpstream,
} from '../helpers/upstream.js';

/** The happy stream's opening (created … content_part.added), then one delta: output has started. */
const opening =
  happyStream('resp_up1').slice(0, 4).join('') +
  frame('response.output_text.delta', 4, {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    delta: 'Partial',
  });

/** Each failure after output, and the reason the client must be told. */
const FAILURES: Record<string, { reason: RegExp; act(res: http.ServerResponse): void }> = {
  'upstream event: error': {
    reason: /The model crashed \(upstream\)/,
    act: (res) =>
      res.write(
        opening +
          `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 5, error: { type: 'server_error', code: 'server_error', message: 'The model crashed (upstream)', param: null } })}\n\n`,
      ),
  },
  'drop mid-stream': {
    reason: /upstream connection lost/,
    act: (res) => res.write(opening, () => (res.socket as Socket).destroy()),
  },
  'end without a terminal event': {
    reason: /upstream closed the stream without a terminal event/,
    act: (res) => res.end(opening),
  },
  'stall past the idle timeout': {
    reason: /stalled/,
    act: (res) => res.write(opening),
  },
  'upstream response.failed': {
    reason: /The prompt was refused \(upstream\)/,
    act: (res) =>
      res.end(
        opening +
          frame('response.failed', 5, {
            response: responseObject('resp_up1', 'failed', {
              error: { code: 'invalid_prompt', message: 'The prompt was refused (upstream)' },
            }),
          }),
      ),
  },
};

const FAMILIES = [
  { name: '/v1/responses', base: (g: string) => `${g}/v1` },
  { name: '/responses', base: (g: string) => g },
  { name: '/backend-api/codex/responses', base: (g: string) => `${g}/backend-api/codex` },
];

let modelCounter = 0;
/** A model per request: no cooldown of one test reaches the next. */
const freshModel = () => `gpt-test-${++modelCounter}`;

/**
 * The message of an error and of its causes (the SDKs wrap the reason); the Vercel AI SDK's stream
 * error part may be the event's own object, which is shown as JSON.
 */
function messages(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) parts.push(e.message);
  if (parts.length === 0) parts.push(typeof err === 'object' ? JSON.stringify(err) : String(err));
  return parts.join(' <- ');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => assert.fail(`expected a failure, got ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
}

describe('third-party clients through the gateway (issue 11 item 19)', function () {
  let upstream: TestUpstream;
  let gateway: TestGateway;

  before(async () => {
    upstream = await startUpstream((_req, res, recorded) => {
      const input = JSON.stringify(recorded.json?.input ?? '');
      const failure = Object.keys(FAILURES).find((k) => input.includes(k));
      if (recorded.json?.stream !== true) {
        if (failure !== undefined) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: { message: 'The server had an error (upstream)', type: 'server_error' },
            }),
          );
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(responseObject('resp_json', 'completed', { output: [MESSAGE_ITEM], usage: USAGE })),
        );
        return;
      }
      writeSseHead(res);
      if (failure === undefined) res.end(happyStream().join(''));
      else FAILURES[failure]!.act(res);
    });
    gateway = await startGateway(
      basicConfig(upstream.url).replace('plugins:', 'proxy:\n  timeouts: { idle: 300ms }\nplugins:'),
    );
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  for (const family of FAMILIES) {
    describe(`${family.name}`, () => {
      describe('LangChain JS (ChatOpenAI, useResponsesApi)', () => {
        // `streaming: false` given explicitly would disable `.stream()` too: only `true` is passed.
        const chat = (streaming?: true) =>
          new ChatOpenAI({
            model: freshModel(),
            apiKey: CLIENT_KEY,
            useResponsesApi: true,
            ...(streaming === undefined ? {} : { streaming }),
            maxRetries: 0,
            configuration: { baseURL: family.base(gateway.url), fetch: recordingFetch },
          });

        it('happy path: .stream() yields the text, .invoke() returns it', async () => {
          let text = '';
          for await (const chunk of await chat().stream('happy')) text += chunk.text;
          assert.equal(text, 'Hello!');
          assert.equal((await chat().invoke('happy')).text, 'Hello!');
        });

        for (const [name, { reason }] of Object.entries(FAILURES)) {
          it(`${name}: .stream() and a streaming .invoke() throw the real reason`, async () => {
            const streamed = await rejection(
              (async () => {
                let text = '';
                for await (const chunk of await chat().stream(name)) text += chunk.text;
                return text;
              })(),
            );
            assert.match(messages(streamed), reason);
            assert.match(messages(await rejection(chat(true).invoke(name))), reason);
          });
        }
      });

      describe('Vercel AI SDK (@ai-sdk/openai responses)', () => {
        const model = () =>
          createOpenAI({
            apiKey: CLIENT_KEY,
            baseURL: family.base(gateway.url),
            fetch: recordingFetch,
          }).responses(freshModel());

        it('happy path: streamText streams the text, generateText returns it', async () => {
          const errors: unknown[] = [];
          const result = streamText({
            model: model(),
            prompt: 'happy',
            maxRetries: 0,
            onError: (e) => void errors.push(e),
          });
          let text = '';
          for await (const part of result.fullStream) {
            if (part.type === 'text-delta') text += part.text;
            if (part.type === 'error') errors.push(part.error);
          }
          assert.equal(text, 'Hello!');
          assert.deepEqual(errors, []);
          const generated = await generateText({ model: model(), prompt: 'happy', maxRetries: 0 });
          assert.equal(generated.text, 'Hello!');
        });

        it("generateText throws the upstream's reason", async () => {
          const err = await rejection(
            generateText({ model: model(), prompt: 'drop mid-stream', maxRetries: 0 }),
          );
          assert.match(messages(err), /The server had an error \(upstream\)/);
        });

        for (const [name, { reason }] of Object.entries(FAILURES)) {
          it(`${name}: streamText's error part and onError carry the real reason`, async () => {
            const onError: unknown[] = [];
            const parts: unknown[] = [];
            const result = streamText({
              model: model(),
              prompt: name,
              maxRetries: 0,
              onError: ({ error }) => void onError.push(error),
            });
            let text = '';
            for await (const part of result.fullStream) {
              if (part.type === 'text-delta') text += part.text;
              if (part.type === 'error') parts.push(part.error);
            }
            assert.equal(text, 'Partial');
            assert.ok(parts.length >= 1, 'an error part');
            assert.match(messages(parts[0]), reason);
            assert.ok(onError.length >= 1, 'onError was called');
            assert.match(messages(onError[0]), reason);
          });
        }
      });
    });
  }
});
