/**
 * Issue 16: the top-level `access_programs` field newer Codex CLIs send (`{"cyber": "standard"}`).
 * API-key upstreams reject it (`400 unsupported_parameter`), so the openai-upstream plugin leaves it
 * out, changing nothing else; Codex accounts take it, so it reaches them unchanged. A body without
 * it goes to an API-key upstream as the client's own bytes. The client's parsed body is never
 * changed: a failover from an API-key upstream to a Codex account still carries the field.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { CodexBackend } from '../helpers/codex-backend.js';
import { accessToken } from '../helpers/codex-jwt.js';
import type { TokenServer } from '../helpers/codex-token-server.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { DEFAULT_PLUGINS, gatewayConfig } from '../helpers/proxy-config.js';
import { deadline, postJson } from '../helpers/raw.js';
import { happyStream, writeSseHead, type RecordedRequest, type TestUpstream } from '../helpers/upstream.js';

const ACCESS_PROGRAMS = { cyber: 'standard' };
/** A Codex-like request: the field among others, nested values and text that must survive as they are. */
const CODEX_BODY = {
  model: 'gpt-5',
  instructions: 'Be terse. «quotes» \u2028 and \\ backslashes',
  input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi 👋' }] }],
  tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: {} }, strict: false }],
  reasoning: { effort: 'medium', summary: 'auto' },
  store: false,
  stream: true,
  include: [],
  prompt_cache_key: 'session-1',
  access_programs: ACCESS_PROGRAMS,
};

function withoutAccessPrograms(body: Record<string, unknown>): Record<string, unknown> {
  const { access_programs: _dropped, ...rest } = body;
  return rest;
}

describe('access_programs: stripped for API-key upstreams, forwarded to Codex accounts', function () {
  this.timeout(20_000);
  const h = Harness.perTest();
  let api: TestUpstream;
  /** The API-key upstream answers with this status (200: a stream). */
  let apiStatus: number;

  beforeEach(async () => {
    apiStatus = 200;
    api = await h.upstream((_req, res) => {
      if (apiStatus !== 200) {
        res.writeHead(apiStatus, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ error: { message: 'boom', type: 'server_error', param: null, code: null } }),
        );
        return;
      }
      writeSseHead(res);
      res.end(happyStream().join(''));
    });
  });

  function apiUpstream(priority = 0): Record<string, unknown> {
    return {
      name: 'api',
      type: 'openai',
      baseUrl: `${api.url}/v1`,
      apiKey: 'sk-upstream-api-secret',
      priority,
    };
  }

  async function codexSetup(): Promise<{ backend: CodexBackend; upstream: Record<string, unknown> }> {
    const tokens: TokenServer = await h.tokenServer();
    const backend = await h.codexBackend(() => true);
    const upstream = {
      name: 'cx',
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      tokens: { access_token: accessToken('acct-ap'), refresh_token: 'rt-acct-ap', account_id: 'acct-ap' },
      priority: 1,
    };
    return { backend, upstream };
  }

  function gateway(upstreams: Record<string, unknown>[]): Promise<TestGateway> {
    return h.gatewayYaml(gatewayConfig({ upstreams, plugins: [...DEFAULT_PLUGINS] }));
  }

  async function send(g: TestGateway, body: string | Record<string, unknown>): Promise<void> {
    const r = await deadline(
      postJson(g.url, '/v1/responses', body),
      10_000,
      'the client response never ended',
    );
    assert.equal(r.status, 200, r.text());
  }

  it('an API-key upstream (openai SDK client) gets every field but access_programs, equal in JSON terms', async () => {
    const g = await gateway([apiUpstream()]);
    const client = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${g.url}/v1`, maxRetries: 0 });
    // The SDK sends fields it has no type for as they are.
    const stream = await client.responses.create(
      CODEX_BODY as unknown as OpenAI.Responses.ResponseCreateParamsStreaming,
    );
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    assert.equal(types.at(-1), 'response.completed');

    assert.equal(api.requests.length, 1);
    const rec: RecordedRequest = api.requests[0]!;
    assert.ok(rec.json !== undefined, 'a JSON body');
    assert.equal(Object.hasOwn(rec.json, 'access_programs'), false);
    assert.deepEqual(rec.json, withoutAccessPrograms(CODEX_BODY));
    assert.equal(rec.headers['content-length'], String(rec.body.length), 'the length of what was sent');
  });

  it('a body without access_programs reaches an API-key upstream as the client’s own bytes', async () => {
    const g = await gateway([apiUpstream()]);
    // Spacing and escapes no serialiser would reproduce: a re-serialised body would differ.
    const text = `{ "model" : "gpt-5",\n  "input":"h\\u0069 \\/ é", "stream":true ,"metadata":{"n":1.50} }`;
    await send(g, text);
    assert.equal(api.requests.length, 1);
    assert.equal(api.requests[0]!.body.toString('utf8'), text);

    // Its twin with the field: changed, so the check above could fail.
    await send(g, text.replace('"stream":true', '"stream":true,"access_programs":{"cyber":"standard"}'));
    const second = api.requests[1]!;
    assert.notEqual(second.body.toString('utf8'), text);
    assert.deepEqual(second.json, JSON.parse(text));
  });

  it('a Codex account gets access_programs unchanged', async () => {
    const { backend, upstream } = await codexSetup();
    const g = await gateway([upstream]);
    await send(g, CODEX_BODY);
    assert.equal(backend.requests.length, 1);
    assert.deepEqual(backend.requests[0]!.json!.access_programs, ACCESS_PROGRAMS);
  });

  it('failover from an API-key upstream to a Codex account: the account still gets the field', async () => {
    const { backend, upstream } = await codexSetup();
    const g = await gateway([apiUpstream(0), upstream]);
    apiStatus = 500;
    await send(g, CODEX_BODY);
    assert.equal(api.requests.length, 1, 'the API-key upstream was tried first');
    assert.equal(Object.hasOwn(api.requests[0]!.json!, 'access_programs'), false);
    assert.equal(backend.requests.length, 1);
    assert.deepEqual(backend.requests[0]!.json!.access_programs, ACCESS_PROGRAMS);
  });
});
