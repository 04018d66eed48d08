/**
 * The real openai Node SDK against the gateway, in front of a scripted loopback upstream: what an
 * application built on the SDK sees, for plain, streamed and helper-streamed responses and errors.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import OpenAI from 'openai';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import { proxyConfig } from '../helpers/proxy-config.js';
import {
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  type TestUpstream,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const HAPPY_TYPES = [
  'response.created',
  'response.in_progress',
  'response.output_item.added',
  'response.content_part.added',
  'response.output_text.delta',
  'response.output_text.done',
  'response.content_part.done',
  'response.output_item.done',
  'response.completed',
];

describe('e2e: openai SDK through the gateway', () => {
  let up: TestUpstream | undefined;
  let g: TestGateway | undefined;
  afterEach(async () => {
    await g?.close();
    await up?.close();
    g = up = undefined;
  });

  async function setup(handler: UpstreamHandler): Promise<OpenAI> {
    up = await startUpstream(handler);
    g = await startGateway(proxyConfig([up.url]));
    return new OpenAI({
      fetch: recordingFetch,
      apiKey: CLIENT_KEY,
      baseURL: `${g.url}/v1`,
      maxRetries: 0,
      timeout: 10_000,
    });
  }

  const streamHandler: UpstreamHandler = (_req, res, rec) => {
    if (rec.json?.stream === true) {
      writeSseHead(res);
      res.end(happyStream('resp_sdk').join(''));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(responseObject('resp_sdk', 'completed', { output: [MESSAGE_ITEM], usage: USAGE })),
      );
    }
  };

  it('responses.create({stream:false}) returns the Response object, with output_text', async () => {
    const client = await setup(streamHandler);
    const resp = await client.responses.create({ model: 'gpt-test', input: 'say hello', stream: false });
    assert.equal(resp.id, 'resp_sdk');
    assert.equal(resp.object, 'response');
    assert.equal(resp.status, 'completed');
    assert.equal(resp.output_text, 'Hello!');
    assert.equal(resp.usage?.total_tokens, 12);
    assert.equal(up!.requests.length, 1);
    assert.equal(up!.requests[0]!.url, '/v1/responses');
    assert.equal(up!.requests[0]!.json?.input, 'say hello');
    assert.notEqual(up!.requests[0]!.json?.stream, true);
  });

  it('responses.create({stream:true}) yields every event, in order, numbered 0…8', async () => {
    const client = await setup(streamHandler);
    const stream = await client.responses.create({ model: 'gpt-test', input: 'say hello', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const ev of stream) events.push(ev);

    assert.deepEqual(
      events.map((e) => e.type),
      HAPPY_TYPES,
    );
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    assert.equal(text, 'Hello!');
    const first = events[0]!;
    const last = events.at(-1)!;
    assert.ok(first.type === 'response.created' && first.response.id === 'resp_sdk');
    assert.ok(
      last.type === 'response.completed' &&
        last.response.id === 'resp_sdk' &&
        last.response.status === 'completed',
    );
    assert.equal(up!.requests[0]!.json?.stream, true);
  });

  it('responses.stream(…).finalResponse() resolves with the completed response', async () => {
    const client = await setup(streamHandler);
    const stream = client.responses.stream({ model: 'gpt-test', input: 'say hello' });
    const deltas: string[] = [];
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    assert.equal(final.id, 'resp_sdk');
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, 'Hello!');
    assert.deepEqual(deltas, ['Hello!']);
  });

  it('an upstream that dies mid-stream makes the helper throw the real reason, not a silent success', async () => {
    const client = await setup(async (_req, res) => {
      writeSseHead(res);
      // Output has started (an item was added), so the loss can only end the stream.
      const [created, inProgress, itemAdded] = happyStream('resp_dead');
      await new Promise<void>((r) => res.write(created! + inProgress! + itemAdded!, () => r()));
      (res.socket as Socket).destroy();
    });
    // The default errorEvent comes just before response.failed: the SDK throws it.
    const err = await client.responses
      .stream({ model: 'gpt-test', input: 'x' })
      .finalResponse()
      .then(
        () => assert.fail('expected an APIError'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof OpenAI.APIError, `got ${String(err)}`);
    assert.equal(err.code, 'server_error');
    assert.equal(err.message, 'upstream connection lost');
  });

  it('an upstream that drops the connection right after its head gives the SDK a 502 APIError, not a broken stream', async () => {
    const client = await setup((_req, res) => {
      const socket = res.socket as Socket;
      socket.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n',
        () => socket.destroy(),
      );
    });
    const err = await client.responses
      .stream({ model: 'gpt-test', input: 'x' })
      .finalResponse()
      .then(
        () => assert.fail('expected an APIError'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof OpenAI.InternalServerError, `got ${String(err)}`);
    assert.equal(err.status, 502);
    assert.equal(err.code, 'server_error');
    assert.equal(err.requestID, up!.requests[0]!.headers['x-request-id']);
  });

  it("a 429 raises RateLimitError with status, code and the gateway's x-request-id as requestID", async () => {
    const client = await setup((_req, res) => {
      res.writeHead(429, {
        'content-type': 'application/json',
        'retry-after': '3',
        'x-request-id': 'req_from_upstream',
      });
      res.end(
        JSON.stringify({
          error: {
            message: 'Rate limit reached for gpt-test',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        }),
      );
    });
    const err = await client.responses.create({ model: 'gpt-test', input: 'x', stream: true }).then(
      () => assert.fail('expected a RateLimitError'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${String(err)}`);
    assert.ok(err instanceof OpenAI.APIError);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.equal(err.type, 'requests');
    assert.match(err.message, /Rate limit reached for gpt-test/);
    const gatewayId = err.headers?.get('x-request-id');
    assert.ok(gatewayId, 'the gateway sent no x-request-id');
    assert.equal(err.requestID, gatewayId);
    assert.notEqual(err.requestID, 'req_from_upstream');
    // The same id the gateway forwarded upstream for this request.
    assert.equal(up!.requests[0]!.headers['x-request-id'], gatewayId);
    assert.equal(err.headers?.get('retry-after'), '3');
    assert.equal(up!.requests.length, 1);
  });
});
