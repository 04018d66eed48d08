/**
 * codex-upstream: the Codex backend's usage-window headers (`x-codex-{primary,secondary}-used-percent`,
 * `-reset-after-seconds`) on a successful response. A full window cools every model of the account
 * until it resets; a window below 100 % cools nothing; an upstream of another type sending the same
 * headers is not the plugin's to cool (issue 12: Codex knowledge lives in its plugin, not the core).
 */
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import { accessToken } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { codexStream, startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const MODEL = 'gpt-5';
const OTHER_MODEL = 'gpt-other';
const BODY = { model: MODEL, input: 'hi', stream: true };

describe('plugin codex-upstream: usage-window cooling', () => {
  let tokens: TokenServer;
  let backend: CodexBackend;
  let fallback: TestUpstream;
  /** Headers the fallback (an openai upstream) adds to its stream. */
  let fallbackHeaders: Record<string, string> = {};
  let g: TestGateway | undefined;

  beforeEach(async () => {
    tokens = await startTokenServer();
    backend = await startCodexBackend(() => true);
    fallbackHeaders = {};
    fallback = await startUpstream((_req, res) => {
      writeSseHead(res, fallbackHeaders);
      res.end(happyStream('resp_fallback').join(''));
    });
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await Promise.all([backend.close(), fallback.close(), tokens.close()]);
  });

  /** Codex upstream `cx` (preferred) and openai upstream `oa`. */
  async function gateway(): Promise<TestGateway> {
    const codex = {
      name: 'cx',
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      tokens: { access_token: accessToken('acct-w'), refresh_token: 'rt-acct-w', account_id: 'acct-w' },
      priority: 0,
    };
    const openai = {
      name: 'oa',
      type: 'openai',
      baseUrl: fallback.url + '/v1',
      apiKey: 'sk-fallback-upstream',
      priority: 1,
    };
    g = await startGateway(codexGatewayConfig([codex, openai]));
    return g;
  }

  function windowAnswer(headers: Record<string, string>): void {
    backend.answer = (_rec, res) => {
      writeSseHead(res, headers);
      res.end(codexStream().join(''));
    };
  }

  function post(gw: TestGateway, body: Record<string, unknown> = BODY): Promise<RawResponse> {
    return deadline(postJson(gw.url, '/v1/responses', body), 5000, 'the client response never ended');
  }

  it('x-codex-primary-used-percent: 100 on a success cools the whole account until the window resets', async () => {
    const gw = await gateway();
    windowAnswer({ 'x-codex-primary-used-percent': '100', 'x-codex-primary-reset-after-seconds': '60' });
    const t0 = Date.now();
    const r1 = await post(gw);
    assert.equal(r1.status, 200);
    assert.match(r1.text(), /resp_codex/, 'the successful response itself is served');

    const cooldown = gw.gw.pool.state.cooldown('cx', OTHER_MODEL, Date.now());
    assert.ok(cooldown, 'every model of the account should be cooling');
    assert.equal(cooldown.kind, 'rate_limit');
    assert.ok(
      cooldown.until >= t0 + 59_000 && cooldown.until <= Date.now() + 60_000,
      `until ${cooldown.until - t0} ms`,
    );

    const r2 = await post(gw);
    const r3 = await post(gw, { ...BODY, model: OTHER_MODEL });
    assert.match(r2.text(), /resp_fallback/);
    assert.match(r3.text(), /resp_fallback/);
    assert.equal(backend.requests.length, 1);
    assert.equal(fallback.requests.length, 2);
  });

  it('the longer of two full windows wins', async () => {
    const gw = await gateway();
    windowAnswer({
      'x-codex-primary-used-percent': '100',
      'x-codex-primary-reset-after-seconds': '30',
      'x-codex-secondary-used-percent': '100.0',
      'x-codex-secondary-reset-after-seconds': '600',
    });
    const t0 = Date.now();
    assert.equal((await post(gw)).status, 200);
    const cooldown = gw.gw.pool.state.cooldown('cx', MODEL, Date.now());
    assert.ok(cooldown !== undefined && cooldown.until >= t0 + 599_000, 'cooling for the secondary window');
  });

  it('a usage window below 100% cools nothing', async () => {
    const gw = await gateway();
    windowAnswer({ 'x-codex-primary-used-percent': '99', 'x-codex-primary-reset-after-seconds': '60' });
    await post(gw);
    assert.equal(gw.gw.pool.state.cooldown('cx', MODEL, Date.now()), undefined);
    const r2 = await post(gw);
    assert.match(r2.text(), /resp_codex/);
    assert.equal(fallback.requests.length, 0);
  });

  it('the same headers from an upstream of another type cool nothing', async () => {
    const gw = await gateway();
    fallbackHeaders = { 'x-codex-primary-used-percent': '100', 'x-codex-primary-reset-after-seconds': '60' };
    // The codex account is cooling for another reason, so the openai upstream serves.
    gw.gw.pool.state.cool('cx', undefined, Date.now() + 60_000, 'test', 'rate_limit');
    const r = await post(gw);
    assert.match(r.text(), /resp_fallback/);
    assert.equal(gw.gw.pool.state.cooldown('oa', MODEL, Date.now()), undefined);
  });
});
