/**
 * Issue 14: the usage recorder in real gateways. One record per request, written at finish from the
 * context: a stream (tokens from its terminal event), a `stream: false` answer (tokens from the JSON
 * body), a failed request (outcome, status and the code the client read), and a request that failed
 * over (one record, naming the account that answered, attempts 2). Records survive a restart.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { jsonError, until } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { MESSAGE_ITEM, responseObject } from '../helpers/upstream.js';
import { countRecords, readRecords, usageTempDir } from '../helpers/usage.js';

const TOKENS = {
  input_tokens: 31,
  input_tokens_details: { cached_tokens: 7 },
  output_tokens: 9,
  output_tokens_details: { reasoning_tokens: 4 },
  total_tokens: 40,
};

function upstreamEntry(name: string, url: string, priority = 0): Record<string, unknown> {
  return { name, type: 'openai', baseUrl: `${url}/v1`, apiKey: upstreamKey(name), priority };
}

async function post(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('usage: the recorder', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  const tmp = usageTempDir('usage-recorder');

  it('records a stream, a JSON answer, a failure and a failover, one record each', async () => {
    const file = tmp.file();
    const a = await h.scripted('A');
    const b = await h.scripted('B');
    const g = await h.gatewayYaml(
      gatewayConfig({
        upstreams: [upstreamEntry('A', a.url, 0), upstreamEntry('B', b.url, 1)],
        usage: { path: file, flushInterval: '50ms' },
      }),
    );

    // 1. A stream: the happy stream's usage (10 in, 2 out, 12 total).
    const stream = await post(g.url, { model: 'gpt-test', input: 'hi', stream: true });
    assert.equal(stream.status, 200);
    await stream.text();

    // 2. stream:false: the JSON answer's usage.
    a.answer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(responseObject('resp_json', 'completed', { output: [MESSAGE_ITEM], usage: TOKENS })),
      );
    });
    const json = await post(g.url, { model: 'gpt-json', input: 'hi' });
    assert.equal(json.status, 200);
    await json.text();

    // 3. A failure the client sees: a 400 is not retried.
    a.answer(
      jsonError(400, {
        error: { message: 'bad input', type: 'invalid_request_error', param: null, code: 'bad_thing' },
      }),
    );
    const failed = await post(g.url, { model: 'gpt-test', input: 'hi', stream: true });
    assert.equal(failed.status, 400);
    const failedCode = ((await failed.json()) as { error: { code: string } }).error.code;

    // 4. A 500 from A fails over to B, which answers the stream.
    a.answer(jsonError(500, { error: { message: 'boom', type: 'server_error', param: null, code: null } }));
    const over = await post(g.url, { model: 'gpt-over', input: 'hi', stream: true });
    assert.equal(over.status, 200);
    await over.text();

    const ids = [stream, json, failed, over].map((r) => r.headers.get('x-request-id'));
    await until(() => countRecords(file) >= 4, 'four records written', 5000);
    const records = readRecords(file);
    assert.equal(records.length, 4);
    assert.deepEqual(
      records.map((r) => r.requestId),
      ids,
    );
    const [s, j, f, o] = records;

    assert.equal(s!.key, 'tester');
    assert.equal(s!.account, 'A');
    assert.equal(s!.model, 'gpt-test');
    assert.equal(s!.route, 'responses');
    assert.equal(s!.status, 200);
    assert.equal(s!.outcome, 'ok');
    assert.equal(s!.errorCode, null);
    assert.equal(s!.attempts, 1);
    assert.deepEqual([s!.input, s!.cachedInput, s!.output, s!.reasoning, s!.total], [10, 0, 2, 0, 12]);
    assert.ok(s!.ttfbMs !== null && s!.ttfbMs >= 0 && s!.ttfbMs <= s!.durationMs, JSON.stringify(s));
    assert.ok(Math.abs(s!.at - Date.now()) < 60_000);

    assert.equal(j!.model, 'gpt-json');
    assert.equal(j!.outcome, 'ok');
    assert.deepEqual([j!.input, j!.cachedInput, j!.output, j!.reasoning, j!.total], [31, 7, 9, 4, 40]);

    assert.equal(f!.outcome, 'error');
    assert.equal(f!.status, 400);
    assert.equal(f!.errorCode, failedCode);
    assert.equal(f!.errorCode, 'bad_thing');
    assert.equal(f!.account, 'A');
    assert.deepEqual([f!.input, f!.output, f!.total], [0, 0, 0]);

    assert.equal(o!.account, 'B', 'the account that answered');
    assert.equal(o!.attempts, 2);
    assert.equal(o!.outcome, 'ok');
    assert.equal(o!.total, 12);
  });

  it('records a request refused before any upstream with no account, and a client abort as client_abort', async () => {
    const file = tmp.file();
    const a = await h.scripted('A');
    const g = await h.gatewayYaml(
      gatewayConfig({ upstreams: [upstreamEntry('A', a.url)], usage: { path: file, flushInterval: '50ms' } }),
    );
    const bad = await fetch(`${g.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: '{not json',
    });
    assert.equal(bad.status, 400);
    await bad.text();

    // The upstream holds its stream open; the client leaves once output arrived.
    const held = a.holdNext(5);
    const gone = new Promise<void>((resolve, reject) => {
      const req = http.request(`${g.url}/v1/responses`, {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      });
      req.on('response', (res) => res.once('data', () => (req.destroy(), resolve())));
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end(JSON.stringify({ model: 'gpt-test', input: 'hi', stream: true }));
    });
    await gone;
    await (
      await held
    ).closed;
    await until(() => countRecords(file) >= 2, 'two records', 5000);
    const [refused, cut] = readRecords(file);
    assert.equal(refused!.account, null);
    assert.equal(refused!.attempts, 0);
    assert.equal(refused!.outcome, 'error');
    assert.equal(refused!.status, 400);
    assert.equal(refused!.ttfbMs, null);
    assert.equal(cut!.account, 'A');
    assert.equal(cut!.outcome, 'client_abort');
    assert.equal(cut!.status, 499);
    assert.notEqual(cut!.ttfbMs, null);
  });

  it('a graceful stop writes the last batch, and records survive a restart on the same file', async () => {
    const file = tmp.file();
    const a = await h.scripted('A');
    // A flush interval far beyond the test: only close() can write these.
    const yaml = gatewayConfig({
      upstreams: [upstreamEntry('A', a.url)],
      usage: { path: file, flushInterval: '1m' },
    });
    const first = await h.gatewayYaml(yaml);
    for (let i = 0; i < 3; i++)
      await (await post(first.url, { model: 'm1', input: 'hi', stream: true })).text();
    assert.equal(countRecords(file), 0, 'nothing written before the interval');
    await first.close();
    assert.equal(countRecords(file), 3);

    const second = await h.gatewayYaml(yaml);
    for (let i = 0; i < 2; i++) await (await post(second.url, { model: 'm2', input: 'hi' })).text();
    await second.close();
    const records = readRecords(file);
    assert.deepEqual(
      records.map((r) => r.model),
      ['m1', 'm1', 'm1', 'm2', 'm2'],
    );
    assert.equal(new Set(records.map((r) => r.requestId)).size, 5);
  });
});
