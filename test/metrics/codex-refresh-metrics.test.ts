/**
 * tapgate_token_refreshes_total from the codex-upstream plugin (through `context.metrics`): a refresh
 * that fails for good, a transient one, and one that works, each counted once on its upstream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { scrape } from '../helpers/metrics.js';
import { postJson } from '../helpers/raw.js';
import { writeAuthFile } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { gatewayConfig } from '../helpers/proxy-config.js';

const BODY = { model: 'gpt-5', input: 'hi', stream: true };

describe('metrics: codex token refreshes by result', () => {
  let dir: string;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let gw: TestGateway;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-metrics-codex-'));
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  after(async () => {
    await gw?.close();
    await backend.close();
    await tokens.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts failed, retry and ok', async () => {
    const dead = tokens.login('acct-dead', -60);
    const flaky = tokens.login('acct-flaky', -60);
    const good = tokens.login('acct-good', -60);
    const codex = (name: string, login: typeof dead, priority: number) => ({
      name,
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      auth: writeAuthFile(dir, login, {}, `${name}.json`),
      priority,
    });
    gw = await startGateway(
      gatewayConfig({
        metrics: { listen: '127.0.0.1:0' },
        upstreams: [codex('cx-dead', dead, 0), codex('cx-flaky', flaky, 1), codex('cx-good', good, 2)],
      }),
    );
    tokens.script = (req) =>
      req.form.refresh_token === dead.refresh_token
        ? { status: 400, body: { error: 'invalid_grant', error_description: 'expired' } }
        : req.form.refresh_token === flaky.refresh_token
          ? { status: 503, body: 'try later' }
          : undefined;
    // cx-dead's refresh fails for good, cx-flaky's for now: the request ends on cx-good.
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.equal(tokens.requests.length, 3);
    const m = await scrape(`${gw.gw.metricsUrl!}/metrics`);
    const count = (upstream: string, result: string) =>
      m.value('tapgate_token_refreshes_total', { upstream, result });
    assert.equal(count('cx-dead', 'failed'), 1);
    assert.equal(count('cx-flaky', 'retry'), 1);
    assert.equal(count('cx-good', 'ok'), 1);
    assert.equal(m.value('tapgate_token_refreshes_total'), 3);
    for (const login of [dead, flaky, good]) assert.ok(!m.text.includes(login.refresh_token));
  });
});
