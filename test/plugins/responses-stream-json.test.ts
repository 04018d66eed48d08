/**
 * Issue 12: the Responses plugin owns "a non-streaming client gets the Response object built from the
 * stream". Any upstream type registered `streamsOnly` gets it (here a test type, not codex), with
 * the stream's own failure as the HTTP error a unary call would have got; a type without the flag
 * is left alone (its stream reaches the client as it came, as before).
 */
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { z } from 'zod';
import { BUILTINS } from '../../app/builtin-plugins.js';
import { parseConfig } from '../../core/config/config.js';
import { Gateway } from '../../core/gateway.js';
import type { PluginContext } from '../../core/index.js';
import { CLIENT_KEY, LogCapture } from '../helpers/gateway.js';
import { parseSse, postJson } from '../helpers/raw.js';
import { upstreamKey } from '../helpers/proxy-config.js';
import {
  frame,
  happyStream,
  responseObject,
  startUpstream,
  writeSseHead,
  type TestUpstream,
} from '../helpers/upstream.js';

/** An upstream type that, like the Codex backend, answers every Responses call with a stream. */
class StreamerPlugin {
  static readonly meta = { name: 'streamer' };
  apply(g: PluginContext): void {
    g.upstreamTypes.register({
      type: 'streamer',
      schema: z.strictObject({ baseUrl: z.string(), apiKey: z.string() }),
      streamsOnly: true,
    });
  }
}

const REGISTRY = { ...BUILTINS, plugins: { ...BUILTINS.plugins, streamer: StreamerPlugin } };
const BODY = { model: 'gpt-test', input: 'hi' };

describe('plugin responses-routes: stream→JSON for stream-only upstream types', () => {
  let up: TestUpstream;
  let frames: string[];
  const gateways: Gateway[] = [];

  beforeEach(async () => {
    frames = happyStream('resp_s1');
    up = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.end(frames.join(''));
    });
  });
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close(0)));
    await up.close();
  });

  async function boot(type: 'streamer' | 'openai'): Promise<Gateway> {
    const yaml = YAML.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}' }] },
      upstreams: [{ name: 's1', type, baseUrl: up.url + '/v1', apiKey: upstreamKey('s1') }],
      plugins: ['responses-routes', 'request-id', ...(type === 'streamer' ? ['streamer'] : [])],
    });
    const loaded = parseConfig(yaml, 'test/config.test.yaml', { TAPGATE_TEST_KEY: CLIENT_KEY });
    loaded.config.server.port = 0;
    loaded.config.usage.enabled = false; // no usage database in the repository
    const gw = await Gateway.create(loaded, { builtins: REGISTRY, logDestination: new LogCapture() });
    gateways.push(gw);
    await gw.listen();
    return gw;
  }

  it('a non-streaming client gets the completed Response object as JSON', async () => {
    const gw = await boot('streamer');
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = JSON.parse(res.text()) as Record<string, unknown>;
    assert.equal(body.object, 'response');
    assert.equal(body.id, 'resp_s1');
    assert.equal(body.status, 'completed');
    const output = body.output as { content: { text: string }[] }[];
    assert.equal(output[0]!.content[0]!.text, 'Hello!');
  });

  it("an `error` event becomes the status-mapped HTTP error (429 with Retry-After), not the stream's 502", async () => {
    frames = [
      frame('response.created', 0, { response: responseObject('resp_s1', 'in_progress') }),
      frame('error', 1, {
        code: 'rate_limit_exceeded',
        message: 'Rate limit reached for gpt-test. Please try again in 2s.',
      }),
    ];
    const gw = await boot('streamer');
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 429);
    assert.equal(res.headers['retry-after'], '2');
    const error = (JSON.parse(res.text()) as { error: Record<string, unknown> }).error;
    assert.equal(error.code, 'rate_limit_exceeded');
    assert.equal(error.type, 'rate_limit_error');
    assert.match(String(error.message), /try again in 2s/);
  });

  it('a type without streamsOnly is left alone: its stream reaches the client as it came', async () => {
    const gw = await boot('openai');
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    assert.equal(parseSse(res.text()).at(-1)?.event, 'response.completed');
  });
});
