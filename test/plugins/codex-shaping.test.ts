/**
 * codex-upstream request shaping: the headers the Codex backend gets (exactly), the body
 * normalisation (pure, then through the gateway), compact, and the client body left intact for
 * a failover to another upstream type.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normaliseBody, shapeHeaders } from '../../plugins/codex-upstream/shape.js';
import { DEFAULT_REMOVE_PARAMETERS } from '../../plugins/codex-upstream/schema.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { postJson } from '../helpers/raw.js';
import { accessToken, idToken, writeAuthFile, type CodexLogin } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { CODEX_BASE_PATH, startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

/** Freezes deeply, so any in-place change to the client's body throws. */
function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

describe('plugin codex-upstream: request shaping', () => {
  describe('normaliseBody (pure)', () => {
    const remove = DEFAULT_REMOVE_PARAMETERS;

    it('forces stream and store, deletes the rejected parameters, wraps a string input, fills instructions', () => {
      const body = deepFreeze({
        model: 'gpt-5',
        input: 'hello',
        stream: false,
        store: true,
        max_output_tokens: 10,
        max_completion_tokens: 10,
        temperature: 0.2,
        top_p: 0.9,
        frequency_penalty: 0,
        presence_penalty: 0,
        user: 'u1',
        metadata: { a: 1 },
        safety_identifier: 'x',
        prompt_cache_retention: '24h',
        stream_options: { include_obfuscation: false },
        previous_response_id: 'resp_prev',
      });
      assert.deepEqual(normaliseBody(body, false, remove), {
        model: 'gpt-5',
        input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }],
        stream: true,
        store: false,
        instructions: '',
      });
    });

    it('adds reasoning.encrypted_content to include when reasoning is set, once', () => {
      const base = {
        model: 'm',
        input: [],
        stream: true,
        store: false,
        instructions: 'x',
        reasoning: { effort: 'low' },
      };
      assert.deepEqual(normaliseBody(deepFreeze({ ...base }), false, remove)?.include, [
        'reasoning.encrypted_content',
      ]);
      assert.deepEqual(
        normaliseBody(deepFreeze({ ...base, include: ['file_search_call.results'] }), false, remove)?.include,
        ['file_search_call.results', 'reasoning.encrypted_content'],
      );
      assert.equal(
        normaliseBody(deepFreeze({ ...base, include: ['reasoning.encrypted_content'] }), false, remove),
        undefined,
        'already normal: no copy, so the original bytes are sent',
      );
      const noReasoning = { model: 'm', input: [], stream: true, store: false, instructions: 'x' };
      assert.equal(normaliseBody(deepFreeze(noReasoning), false, remove), undefined);
    });

    it('turns system messages into developer ones, copying only what changes; other items pass untouched', () => {
      const items = [
        { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'be brief' }] },
        { role: 'system', content: 'no type field' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
        { type: 'compaction_trigger' },
        { type: 'compaction', encrypted_content: 'enc' },
        { type: 'additional_tools', tools: [{ type: 'namespace', name: 'ns', tools: [] }] },
        { type: 'function_call_output', role: 'system', call_id: 'c', output: 'not a message: left alone' },
      ];
      const body = deepFreeze({
        model: 'm',
        input: items,
        stream: true,
        store: false,
        client_metadata: { installation_id: 'i' },
        tools: [{ type: 'namespace', name: 'ns', tools: [] }],
        internal_chat_message_metadata_passthrough: { k: 'v' },
      });
      const out = normaliseBody(body, false, remove)!;
      const input = out.input as Record<string, unknown>[];
      assert.equal(input[0]!.role, 'developer');
      assert.equal(input[1]!.role, 'developer');
      assert.equal(input[2], items[2], 'unchanged items are the same objects');
      assert.equal(input[3], items[3]);
      assert.equal(input[4], items[4]);
      assert.equal(input[5], items[5]);
      assert.equal(input[6], items[6]);
      assert.deepEqual(out.client_metadata, { installation_id: 'i' });
      assert.equal(out.tools, body.tools);
      assert.deepEqual(out.internal_chat_message_metadata_passthrough, { k: 'v' });
      assert.equal(out.instructions, '');
    });

    it('compact: deletes stream and store, adds neither include nor stream', () => {
      const body = deepFreeze({
        model: 'm',
        input: 'x',
        stream: true,
        store: true,
        reasoning: {},
        temperature: 1,
      });
      assert.deepEqual(normaliseBody(body, true, remove), {
        model: 'm',
        input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] }],
        reasoning: {},
        instructions: '',
      });
    });

    it('a configured removeParameters list replaces the default', () => {
      const body = deepFreeze({
        model: 'm',
        input: [],
        stream: true,
        store: false,
        instructions: '',
        temperature: 1,
        foo: 2,
      });
      assert.deepEqual(normaliseBody(body, false, ['foo']), {
        model: 'm',
        input: [],
        stream: true,
        store: false,
        instructions: '',
        temperature: 1,
      });
    });
  });

  describe('shapeHeaders (pure)', () => {
    it('builds the set from scratch: allow-listed client headers, then credentials and identity', () => {
      const out = shapeHeaders(
        {
          'session-id': 's',
          'x-custom': 'dropped',
          originator: 'codex_exec',
          version: '0.100.0',
          'user-agent': 'client/1',
          'chatgpt-account-id': 'spoofed',
          'x-request-id': 'rid',
        },
        {
          requestId: 'rid',
          accessToken: 'AT',
          accountId: 'acct',
          identity: {
            originator: 'codex_cli_rs',
            version: '0.169.0',
            userAgent: 'codex_cli_rs/0.169.0 (tapgate)',
          },
          pass: new Set(['session-id', 'originator', 'version']),
          compact: true,
        },
      );
      assert.deepEqual(out, {
        'session-id': 's',
        'x-request-id': 'rid',
        'content-type': 'application/json',
        accept: 'application/json',
        originator: 'codex_cli_rs',
        'user-agent': 'codex_cli_rs/0.169.0 (tapgate)',
        version: '0.169.0',
        'chatgpt-account-id': 'acct',
        authorization: 'Bearer AT',
      });
    });
  });

  describe('through the gateway', () => {
    let dir: string;
    let tokens: TokenServer;
    let backend: CodexBackend;
    let other: TestUpstream;
    let g: TestGateway;
    let login: CodexLogin;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tapgate-codex-shape-'));
      tokens = await startTokenServer();
      backend = await startCodexBackend(tokens.accepts);
      other = await startUpstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream('resp_other').join(''));
      });
      login = {
        access_token: accessToken('acct-shape'),
        refresh_token: 'rt-shape',
        id_token: idToken('acct-shape'),
      };
      tokens.register(login, 'acct-shape');
      g = await startGateway(
        codexGatewayConfig([
          {
            name: 'cx',
            type: 'codex',
            baseUrl: backend.baseUrl,
            tokenUrl: tokens.url,
            auth: writeAuthFile(dir, login),
            priority: 0,
          },
          {
            name: 'oa',
            type: 'openai',
            baseUrl: other.url + '/v1',
            apiKey: 'sk-other-upstream-key',
            priority: 1,
          },
        ]),
      );
    });
    after(async () => {
      await g.close();
      await backend.close();
      await other.close();
      await tokens.close();
      rmSync(dir, { recursive: true, force: true });
    });
    afterEach(() => {
      backend.answer = undefined;
    });

    it('sends exactly the expected headers: credentials, identity, the allow-list; never the client key', async () => {
      const client: Record<string, string> = {
        'session-id': 'sess-1',
        session_id: 'sess-old',
        'thread-id': 'thr-1',
        conversation_id: 'conv-1',
        'x-client-request-id': 'creq-1',
        'x-codex-turn-state': 'ts-1',
        'x-codex-turn-metadata': '{"turn_id":"t"}',
        'x-codex-beta-features': 'remote_compaction_v2',
        'x-codex-window-id': 'w:0',
        originator: 'codex_exec',
        version: '0.150.0',
        'user-agent': 'codex_exec/0.150.0 (Debian; x86_64)',
        'x-custom': 'not forwarded',
        'openai-beta': 'responses=experimental',
        'chatgpt-account-id': 'client-chosen',
        cookie: 'a=b',
        accept: '*/*',
      };
      const res = await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-5', input: 'hi', stream: true },
        client,
      );
      assert.equal(res.status, 200);
      const rec = backend.requests.at(-1)!;
      assert.equal(rec.url, `${CODEX_BASE_PATH}/responses`);
      const h = { ...rec.headers };
      assert.equal(h.authorization, `Bearer ${login.access_token}`);
      assert.equal(h['x-request-id'], res.headers['x-request-id']);
      for (const k of ['host', 'connection', 'content-length', 'authorization', 'x-request-id']) delete h[k];
      assert.deepEqual(h, {
        'session-id': 'sess-1',
        session_id: 'sess-old',
        'thread-id': 'thr-1',
        conversation_id: 'conv-1',
        'x-client-request-id': 'creq-1',
        'x-codex-turn-state': 'ts-1',
        'x-codex-turn-metadata': '{"turn_id":"t"}',
        'x-codex-beta-features': 'remote_compaction_v2',
        'x-codex-window-id': 'w:0',
        'content-type': 'application/json',
        accept: 'text/event-stream',
        originator: 'codex_cli_rs',
        'user-agent': 'codex_cli_rs/0.169.0 (tapgate)',
        version: '0.169.0',
        'chatgpt-account-id': 'acct-shape',
      });
      assert.doesNotMatch(JSON.stringify(rec.headers), /sk-client-test|sk-other/);
    });

    it('normalises the body and leaves unknown fields and items untouched', async () => {
      const body = {
        model: 'gpt-5',
        input: [
          { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'sys' }] },
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
          { type: 'compaction_trigger' },
        ],
        stream: true,
        reasoning: { effort: 'medium' },
        temperature: 0.5,
        max_output_tokens: 100,
        metadata: { k: 'v' },
        previous_response_id: 'resp_0',
        client_metadata: { installation_id: 'inst' },
        tools: [{ type: 'namespace', name: 'ns', tools: [] }],
        prompt_cache_key: 'pck',
      };
      const res = await postJson(g.url, '/v1/responses', body);
      assert.equal(res.status, 200);
      assert.deepEqual(backend.requests.at(-1)!.json, {
        model: 'gpt-5',
        input: [
          { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'sys' }] },
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
          { type: 'compaction_trigger' },
        ],
        stream: true,
        reasoning: { effort: 'medium' },
        client_metadata: { installation_id: 'inst' },
        tools: [{ type: 'namespace', name: 'ns', tools: [] }],
        prompt_cache_key: 'pck',
        store: false,
        include: ['reasoning.encrypted_content'],
        instructions: '',
      });
    });

    it('forwards an already-normal body byte for byte (no re-serialisation)', async () => {
      const raw = '{ "model" : "gpt-5",  "input": [], "stream": true, "store": false, "instructions": "x" }';
      const res = await postJson(g.url, '/v1/responses', raw);
      assert.equal(res.status, 200);
      assert.equal(backend.requests.at(-1)!.body.toString(), raw);
    });

    it('compact: /responses/compact, accept application/json, no stream or store; the JSON passes through', async () => {
      const res = await postJson(g.url, '/v1/responses/compact', {
        model: 'gpt-5',
        input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] }],
        instructions: 'be short',
        stream: true,
        store: true,
      });
      assert.equal(res.status, 200);
      assert.equal(res.json().object, 'response.compaction');
      const rec = backend.requests.at(-1)!;
      assert.equal(rec.url, `${CODEX_BASE_PATH}/responses/compact`);
      assert.equal(rec.headers.accept, 'application/json');
      assert.deepEqual(rec.json, {
        model: 'gpt-5',
        input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] }],
        instructions: 'be short',
      });
    });

    it('replays the client body unchanged to another upstream type on failover', async () => {
      backend.answer = (_rec, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"boom","type":"server_error","param":null,"code":null}}');
      };
      const body = { model: 'gpt-fail', input: 'hi', temperature: 0.3, stream: true, metadata: { a: 1 } };
      const res = await postJson(g.url, '/v1/responses', body);
      assert.equal(res.status, 200);
      assert.match(res.text(), /resp_other/);
      const codexSaw = backend.requests.at(-1)!.json!;
      assert.equal(codexSaw.temperature, undefined);
      assert.equal(codexSaw.store, false);
      const openaiSaw = other.requests.at(-1)!;
      assert.deepEqual(openaiSaw.json, body, 'the openai upstream gets what the client sent');
      assert.equal(openaiSaw.headers.authorization, 'Bearer sk-other-upstream-key');
      assert.equal(openaiSaw.headers['chatgpt-account-id'], undefined);
    });
  });
});
