/**
 * Issue 16: silent model substitution. An answer whose Response names another model than the one
 * requested is logged at warn (reqId, requested, served; at most one line a minute, with how many
 * since) and counted in `tapgate_model_substitutions_total{requested,served}`: for a stream on its
 * `response.created`, for a JSON answer on its `model`, for a stream collected into JSON (a Codex
 * account, a non-streaming client) once. The same model, or a dated snapshot of it, is no
 * substitution. The labels stay bounded like the core's model labels.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { codexStream } from '../helpers/codex-backend.js';
import { accessToken } from '../helpers/codex-jwt.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { scrape, type Exposition } from '../helpers/metrics.js';
import { gatewayConfig } from '../helpers/proxy-config.js';
import {
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
  type TestUpstream,
} from '../helpers/upstream.js';

const SERIES = 'tapgate_model_substitutions_total';
const WARNING = 'model substituted: the upstream answered with another model than the one requested';

describe('plugin responses-routes: silent model substitution', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let upstream: TestUpstream;
  /** The model the upstream's Response names (undefined: the one requested). */
  let served: string | undefined;
  /** Fields of the upstream's Response that come before its `model` (decoys for the scan). */
  let before: Record<string, unknown>;

  beforeEach(async () => {
    served = undefined;
    before = {};
    upstream = await h.upstream((_req, res, rec) => {
      const model = served ?? String(rec.json?.model);
      if (rec.json?.stream === true) {
        writeSseHead(res);
        res.end(
          happyStream()
            .join('')
            .replaceAll('"model":"gpt-test"', `"model":${JSON.stringify(model)}`),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          responseObject('resp_json', 'completed', {
            ...before,
            model,
            output: [MESSAGE_ITEM],
            usage: USAGE,
          }),
        ),
      );
    });
  });

  function gateway(upstreams?: Record<string, unknown>[]): Promise<TestGateway> {
    return h.gatewayYaml(
      gatewayConfig({
        metrics: { listen: '127.0.0.1:0' },
        upstreams: upstreams ?? [
          { name: 'up1', type: 'openai', baseUrl: `${upstream.url}/v1`, apiKey: 'sk-upstream-up1-secret' },
        ],
      }),
    );
  }

  function client(g: TestGateway): OpenAI {
    return new OpenAI({ apiKey: CLIENT_KEY, baseURL: `${g.url}/v1`, maxRetries: 0 });
  }

  /** A streamed request; returns its x-request-id. */
  async function streamed(g: TestGateway, model: string): Promise<string> {
    const { data: stream, response } = await client(g)
      .responses.create({ model, input: 'hi', stream: true })
      .withResponse();
    let last = '';
    for await (const ev of stream) last = ev.type;
    assert.equal(last, 'response.completed');
    return response.headers.get('x-request-id')!;
  }

  /** A non-streamed request; returns the model the client was told and the x-request-id. */
  async function unary(g: TestGateway, model: string): Promise<{ model: string; reqId: string }> {
    const { data, response } = await client(g).responses.create({ model, input: 'hi' }).withResponse();
    return { model: data.model, reqId: response.headers.get('x-request-id')! };
  }

  const metrics = (g: TestGateway): Promise<Exposition> => scrape(`${g.gw.metricsUrl!}/metrics`);
  const warnings = (g: TestGateway) => g.logs.filter((l) => l.msg === WARNING);

  it('a stream answered by another model: one warn line with the request id, one count', async () => {
    const g = await gateway();
    served = 'gpt-4o-mini';
    const reqId = await streamed(g, 'gpt-5');
    const m = await metrics(g);
    assert.equal(m.value(SERIES, { requested: 'gpt-5', served: 'gpt-4o-mini' }), 1);
    assert.equal(m.samples(SERIES).length, 1);
    const lines = warnings(g);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 40);
    assert.equal(lines[0]!.reqId, reqId);
    assert.equal(lines[0]!.requested, 'gpt-5');
    assert.equal(lines[0]!.served, 'gpt-4o-mini');
  });

  it('a JSON answer by another model: counted; a sibling model is no version suffix', async () => {
    const g = await gateway();
    served = 'gpt-5-mini';
    const r = await unary(g, 'gpt-5');
    assert.equal(r.model, 'gpt-5-mini', 'the answer itself is untouched');
    assert.equal((await metrics(g)).value(SERIES, { requested: 'gpt-5', served: 'gpt-5-mini' }), 1);
    assert.equal(warnings(g)[0]!.reqId, r.reqId);
  });

  it('the same model, or a dated snapshot of it, is no substitution (stream and JSON)', async () => {
    const g = await gateway();
    await streamed(g, 'gpt-5');
    await unary(g, 'gpt-5');
    served = 'gpt-4o-2024-08-06';
    await streamed(g, 'gpt-4o');
    await unary(g, 'gpt-4o');
    served = 'gpt-4-0613';
    await streamed(g, 'gpt-4');
    assert.equal(upstream.requests.length, 5);
    const m = await metrics(g);
    assert.equal(m.family(SERIES)?.type, 'counter', 'the series is registered');
    assert.equal(m.samples(SERIES).length, 0);
    assert.equal(warnings(g).length, 0);
  });

  it('a JSON answer: a `model` nested, or quoted in a string, before the Response’s own is not read', async () => {
    const g = await gateway();
    // responseObject puts `instructions` and `metadata` before `model`.
    before = { instructions: 'answer as {"model":"decoy-a"}', metadata: { model: 'decoy-b' } };
    served = 'gpt-4o-mini';
    const r = await unary(g, 'gpt-5');
    assert.equal(r.model, 'gpt-4o-mini');
    const m = await metrics(g);
    assert.equal(m.value(SERIES, { requested: 'gpt-5', served: 'gpt-4o-mini' }), 1);
    assert.equal(m.value(SERIES), 1);
  });

  it('many substitutions: every one counted, the warning written once a minute with how many', async () => {
    const g = await gateway();
    served = 'gpt-4o-mini';
    for (let i = 0; i < 3; i++) await streamed(g, 'gpt-5');
    await unary(g, 'gpt-5');
    assert.equal((await metrics(g)).value(SERIES, { requested: 'gpt-5', served: 'gpt-4o-mini' }), 4);
    const lines = warnings(g);
    assert.equal(lines.length, 1, 'rate-limited');
    assert.equal(lines[0]!.occurrences, 1);
  });

  it('labels stay bounded: past the core’s cap on model names, `other`', async () => {
    const g = await gateway();
    served = 'gpt-served';
    const names = Array.from({ length: 60 }, (_, i) => `client-model-${i}`);
    for (const name of names) await unary(g, name);
    const m = await metrics(g);
    assert.equal(m.value(SERIES), 60, 'every one counted');
    const requested = new Set(m.samples(SERIES).map((s) => s.labels.requested));
    assert.ok(requested.has('other'), 'the names past the cap share `other`');
    assert.ok(requested.size <= 51, `${requested.size} requested labels`);
    // The same bound as tapgate_requests_total's model label: the labels are the same names.
    const core = new Set(m.samples('tapgate_requests_total').map((s) => s.labels.model));
    for (const label of requested) assert.ok(core.has(label), label);
  });

  it('a Codex account answering a non-streaming client (a collected stream): counted once', async () => {
    const tokens = await h.tokenServer();
    const backend = await h.codexBackend(() => true);
    backend.answer = (_rec, res) => {
      writeSseHead(res);
      res.end(codexStream().join(''));
    };
    const g = await gateway([
      {
        name: 'cx',
        type: 'codex',
        baseUrl: backend.baseUrl,
        tokenUrl: tokens.url,
        tokens: { access_token: accessToken('acct-mc'), refresh_token: 'rt-acct-mc', account_id: 'acct-mc' },
      },
    ]);
    const r = await unary(g, 'gpt-5');
    assert.equal(r.model, 'gpt-test');
    const m = await metrics(g);
    assert.equal(m.value(SERIES, { requested: 'gpt-5', served: 'gpt-test' }), 1);
    assert.equal(m.value(SERIES), 1);
  });
});
