import assert from 'node:assert/strict';
import { basicConfig, CLIENT_KEY, startGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { postJson, rawRequest } from '../helpers/raw.js';

/** The access line is built by hand (core/observe/access-log.ts): it must stay valid JSON, filtered by level, scrubbed. */
describe('access log line', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  const okUpstream = () =>
    h.upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"resp_1","object":"response","status":"completed"}');
    });

  it('is one JSON line per request, in pino’s shape, whatever the path and model hold', async () => {
    const up = await okUpstream();
    const g = h.track(await startGateway(basicConfig(up.url)));
    const model = 'm "quoted" \\ back\nline\ttab \u2028 ünï 🙂';
    const r = await postJson(g.url, '/v1/responses?x="y"', { model, input: 'hi' });
    assert.equal(r.status, 200);
    const line = g.logs.find((l) => l.msg === 'request');
    assert.ok(line, 'an access line');
    assert.equal(line.level, 30);
    assert.equal(line.name, 'tapgate');
    assert.ok(!Number.isNaN(Date.parse(String(line.time))), 'an ISO time');
    assert.equal(line.model, model);
    assert.equal(line.path, '/v1/responses');
    assert.equal(line.method, 'POST');
    assert.equal(line.route, 'responses');
    assert.equal(line.status, 200);
    assert.equal(line.outcome, 'ok');
    assert.equal(line.client, 'tester');
    assert.equal(line.upstream, 'up1');
    assert.equal(typeof line.ms, 'number');
    assert.equal(typeof line.ttfbMs, 'number');
  });

  it('masks a secret in the values that come from outside (model, path, error message)', async () => {
    const up = await h.upstream((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `bad key ${CLIENT_KEY}`, type: 'invalid_request_error' } }));
    });
    const g = h.track(await startGateway(basicConfig(up.url)));
    const r = await postJson(g.url, `/v1/responses?k=1`, { model: `x-${CLIENT_KEY}`, input: 'hi' });
    assert.equal(r.status, 400);
    const line = g.logs.find((l) => l.msg === 'request failed');
    assert.ok(line, 'a failed-request line');
    assert.equal(line.level, 40);
    assert.equal(line.model, 'x-[redacted]');
    assert.equal((line.error as { message: string }).message, 'bad key [redacted]');
    const probe = await rawRequest(g.url, { method: 'GET', path: `/x/${CLIENT_KEY}` });
    assert.equal(probe.status, 401);
    assert.ok(
      g.logs.some((l) => l.path === '/x/[redacted]'),
      'the path, masked',
    );
    assert.ok(!JSON.stringify(g.logs).includes(CLIENT_KEY));
  });

  it('follows log.level: at warn, a success writes no access line and a failure does', async () => {
    const up = await okUpstream();
    const g = h.track(await startGateway(basicConfig(up.url, 'log:\n  level: warn\n')));
    assert.equal((await postJson(g.url, '/v1/responses', { model: 'm', input: 'hi' })).status, 200);
    const missing = await rawRequest(g.url, { method: 'GET', path: '/nowhere' });
    assert.equal(missing.status, 401);
    const lines = g.logs.filter((l) => l.msg === 'request' || l.msg === 'request failed');
    assert.deepEqual(
      lines.map((l) => [l.msg, l.status]),
      [['request failed', 401]],
    );
  });
});
