/**
 * Prometheus metrics: a known mix of requests (JSON, SSE, a response.failed after output, an upstream
 * 400, a 500 that fails over, a refused key) driven with the openai SDK, then the exposition scraped
 * on the metrics listener and parsed; the main-port /metrics behind metrics.token.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { scrape, type Exposition } from '../helpers/metrics.js';
import { jsonError, startScripted, type ScriptedUpstream } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { frame, happyStream, responseObject, writeSseHead } from '../helpers/upstream.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const JSON_USAGE = {
  input_tokens: 7,
  input_tokens_details: { cached_tokens: 3 },
  output_tokens: 4,
  output_tokens_details: { reasoning_tokens: 1 },
  total_tokens: 11,
};

describe('metrics: counts after a known mix of requests', () => {
  let up1: ScriptedUpstream;
  let up2: ScriptedUpstream;
  let gw: TestGateway;
  let m: Exposition;

  before(async () => {
    up1 = await startScripted('up1');
    up2 = await startScripted('up2');
    gw = await startGateway(
      gatewayConfig({
        metrics: { listen: '127.0.0.1:0', token: METRICS_TOKEN },
        upstreams: [up1, up2].map((u, i) => ({
          name: u.name,
          type: 'openai',
          baseUrl: `${u.url}/v1`,
          apiKey: upstreamKey(u.name),
          // up1 first whenever it can take the request.
          priority: i,
          models: ['gpt-test'],
        })),
      }),
    );
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });

    // 1. JSON, ok, on up1.
    up1.answer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(responseObject('resp_json', 'completed', { usage: JSON_USAGE })));
    });
    await client.responses.create({ model: 'gpt-test', input: 'hi' });
    // 2. SSE, ok, on up1 (USAGE: 10 in, 2 out).
    const stream = await client.responses.create({ model: 'gpt-test', input: 'hi', stream: true });
    for await (const _ of stream);
    // 3. SSE that fails after output: the upstream's response.failed is forwarded.
    up1.answer((_req, res) => {
      writeSseHead(res);
      res.end(
        happyStream('resp_f').slice(0, 5).join('') +
          frame('response.failed', 5, {
            response: responseObject('resp_f', 'failed', {
              error: { code: 'server_error', message: 'the model broke down' },
            }),
          }),
      );
    });
    await assert.rejects(async () => {
      for await (const _ of await client.responses.create({ model: 'gpt-test', input: 'x', stream: true }));
    });
    // 4. An upstream 400: no failover, no cooldown.
    up1.answer(
      jsonError(400, { error: { message: 'bad input', type: 'invalid_request_error', code: null } }),
    );
    await assert.rejects(client.responses.create({ model: 'gpt-test', input: 'x' }), { status: 400 });
    // 5. An upstream 500 on up1: cooled, failed over to up2 (USAGE again).
    up1.answer(jsonError(500, { error: { message: 'boom', type: 'server_error', code: null } }));
    const s2 = await client.responses.create({ model: 'gpt-test', input: 'hi', stream: true });
    for await (const _ of s2);
    // 6. A wrong client key: refused at admission.
    const stranger = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-not-a-key-000000', maxRetries: 0 });
    await assert.rejects(stranger.responses.create({ model: 'gpt-test', input: 'x' }), { status: 401 });

    m = await scrape(`${gw.gw.metricsUrl!}/metrics`);
  });
  after(async () => {
    await gw?.close();
    await up1?.close();
    await up2?.close();
  });

  const req = (labels: Record<string, string> = {}) => m.value('tapgate_requests_total', labels);

  it('counts requests by route, status class, outcome, model, upstream and key name', () => {
    const base = { route: 'responses', model: 'gpt-test', key: 'tester' };
    assert.equal(req({ ...base, status_class: '2xx', outcome: 'ok', upstream: 'up1' }), 2);
    assert.equal(req({ ...base, status_class: '2xx', outcome: 'error', upstream: 'up1' }), 1);
    assert.equal(req({ ...base, status_class: '4xx', outcome: 'error', upstream: 'up1' }), 1);
    assert.equal(req({ ...base, status_class: '2xx', outcome: 'ok', upstream: 'up2' }), 1);
    assert.equal(
      req({
        route: 'responses',
        status_class: '4xx',
        outcome: 'error',
        model: 'none',
        upstream: 'none',
        key: 'none',
      }),
      1,
    );
    assert.equal(req(), 6, 'the scrape itself and nothing else is uncounted');
  });

  it('counts tokens by direction from the answers’ usage', () => {
    const up1Tokens = (direction: string) =>
      m.value('tapgate_tokens_total', { direction, model: 'gpt-test', upstream: 'up1', key: 'tester' });
    assert.equal(up1Tokens('input'), 17);
    assert.equal(up1Tokens('output'), 6);
    assert.equal(up1Tokens('cached_input'), 3);
    assert.equal(up1Tokens('reasoning'), 1);
    assert.equal(m.value('tapgate_tokens_total', { direction: 'input', upstream: 'up2' }), 10);
  });

  it('has duration and time-to-first-byte histograms', () => {
    assert.equal(m.family('tapgate_request_duration_seconds')?.type, 'histogram');
    assert.equal(m.value('tapgate_request_duration_seconds', { route: 'responses', upstream: 'up1' }), 4);
    assert.equal(m.value('tapgate_request_duration_seconds'), 6);
    // Output reached the client in 1, 2, 3 (up1) and 5 (up2); the 400 and the 401 had none.
    assert.equal(m.value('tapgate_time_to_first_byte_seconds', { upstream: 'up1' }), 3);
    assert.equal(m.value('tapgate_time_to_first_byte_seconds', { upstream: 'up2' }), 1);
    // Buckets cumulative up to +Inf, which is the count; _sum positive.
    const buckets = m
      .family('tapgate_request_duration_seconds')!
      .samples.filter(
        (s) => s.name === 'tapgate_request_duration_seconds_bucket' && s.labels.upstream === 'up1',
      );
    assert.equal(buckets.length, 19);
    assert.deepEqual(buckets.at(-1)!.labels, { route: 'responses', upstream: 'up1', le: '+Inf' });
    assert.equal(buckets.at(-1)!.value, 4);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    const sum = m
      .family('tapgate_request_duration_seconds')!
      .samples.find((s) => s.name === 'tapgate_request_duration_seconds_sum' && s.labels.upstream === 'up1');
    assert.ok(sum !== undefined && sum.value > 0);
  });

  it('counts the cooldown, the failover and the terminal failure', () => {
    assert.equal(m.value('tapgate_cooldowns_total', { upstream: 'up1', kind: 'transient' }), 1);
    assert.equal(m.value('tapgate_cooldowns_total'), 1);
    assert.equal(m.value('tapgate_failovers_total', { upstream: 'up1' }), 1);
    assert.equal(m.value('tapgate_failovers_total'), 1);
    assert.equal(m.value('tapgate_terminal_failures_total', { code: 'server_error' }), 1);
    assert.equal(m.value('tapgate_terminal_failures_total'), 1);
  });

  it('has the scrape-time gauges: in flight, queue, slots, upstream state', () => {
    assert.equal(m.value('tapgate_requests_in_flight'), 0);
    assert.equal(m.value('tapgate_queue_length'), 0);
    assert.equal(m.samples('tapgate_upstream_slots_in_use').length, 2);
    assert.equal(m.value('tapgate_upstream_slots_in_use'), 0);
    const state = (upstream: string, s: string) => m.value('tapgate_upstream_state', { upstream, state: s });
    assert.deepEqual([state('up1', 'ok'), state('up1', 'cooling'), state('up1', 'disabled')], [0, 1, 0]);
    assert.deepEqual([state('up2', 'ok'), state('up2', 'cooling'), state('up2', 'disabled')], [1, 0, 0]);
  });

  it('has the process metrics (prom-client defaults) and no secret, raw path or request id', () => {
    assert.ok(m.family('process_cpu_user_seconds_total'));
    assert.ok(m.family('nodejs_eventloop_lag_seconds'));
    for (const secret of [CLIENT_KEY, METRICS_TOKEN, upstreamKey('up1'), 'sk-not-a-key-000000'])
      assert.ok(!m.text.includes(secret));
    assert.doesNotMatch(m.text, /\/v1\/responses|req_|resp_/);
  });

  it('serves /metrics on the main port only with the metrics token', async () => {
    const url = `${gw.url}/metrics`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
    const wrong = await fetch(url, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    assert.equal(wrong.status, 401);
    await wrong.text();
    const main = await scrape(url, METRICS_TOKEN);
    assert.equal(main.value('tapgate_requests_total', { upstream: 'up2' }), 1);
    // The listener needs no token.
    assert.equal((await fetch(`${gw.gw.metricsUrl!}/metrics`)).status, 200);
  });
});
