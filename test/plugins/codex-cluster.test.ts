/**
 * codex-upstream with a shared state store (`state.store: redis`, a real redis-server): one token
 * refresh per account for the whole cluster. Two gateways in this process stand for two instances
 * (same YAML, same auth.json); the last test runs the real binary with `server.workers: 2`.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { killStrayClis, runCli } from '../helpers/cli.js';
import type { CodexBackend } from '../helpers/codex-backend.js';
import { writeAuthFile } from '../helpers/codex-jwt.js';
import type { TokenServer } from '../helpers/codex-token-server.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import { gatewayConfig } from '../helpers/proxy-config.js';
import { postJson, type RawResponse } from '../helpers/raw.js';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.js';

const BODY = { model: 'gpt-5', input: 'hi', stream: true };
/** The upstream's name: the account's name in the store, the same on every instance. */
const NAME = 'codex-main';
const WAITING = 'codex token refresh running in another process: waiting for its tokens';
const REFRESHED = 'codex access token refreshed';
const ADOPTED = 'codex tokens adopted from the shared store (refreshed by another process)';

function bearer(rec: { headers: Record<string, unknown> }): string {
  return String(rec.headers.authorization).slice('Bearer '.length);
}

function count(gw: TestGateway, msg: string): number {
  return gw.logs.filter((l) => l.msg === msg).length;
}

/** Counts the atomic writes onto `path` (each ends in a rename onto it), as inotify reports them. */
function watchWrites(path: string): { settled(): Promise<number>; close(): void } {
  const dir = dirname(path);
  const name = basename(path);
  let writes = 0;
  let markers = 0;
  const waiting = new Map<string, () => void>();
  const watcher = watch(dir, (event, file) => {
    if (file === name && event === 'rename') writes++;
    if (file !== null) waiting.get(file)?.();
  });
  return {
    // Events arrive in order: once a marker written now is reported, every earlier write was too.
    async settled() {
      const marker = `.marker-${++markers}`;
      const seen = new Promise<void>((resolve) => waiting.set(marker, resolve));
      writeFileSync(join(dir, marker), '');
      await seen;
      return writes;
    },
    close: () => watcher.close(),
  };
}

describe('plugin codex-upstream: one refresh per account for the cluster (state.store: redis)', function () {
  this.timeout(60_000);
  const h = Harness.perTest();
  let dir: string;
  let redis: TestRedis;
  let tokens: TokenServer;
  let backend: CodexBackend;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-codex-cluster-'));
    redis = h.track(await startRedis());
    tokens = await h.tokenServer();
    backend = await h.codexBackend(tokens.accepts);
  });
  afterEach(() => {
    killStrayClis();
    rmSync(dir, { recursive: true, force: true });
  });

  function yaml(auth: string, extra: { baseUrl?: string; server?: Record<string, unknown> } = {}): string {
    return gatewayConfig({
      server: extra.server,
      log: { level: 'debug' },
      state: { store: 'redis', url: redis.url },
      upstreams: [
        { name: NAME, type: 'codex', baseUrl: extra.baseUrl ?? backend.baseUrl, tokenUrl: tokens.url, auth },
      ],
    });
  }

  /** Two instances of one account: same upstream name, same auth file unless told otherwise. */
  async function pair(authA: string, authB = authA, baseUrlB?: string): Promise<[TestGateway, TestGateway]> {
    const a = await h.gatewayYaml(yaml(authA));
    const b = await h.gatewayYaml(yaml(authB, { baseUrl: baseUrlB }));
    return [a, b];
  }

  function statuses(results: RawResponse[]): number[] {
    return results.map((r) => r.status);
  }

  it('20 concurrent requests over two instances, expired token: one refresh, all succeed, auth.json written once', async () => {
    const l = tokens.login('acct-1', -60);
    const path = writeAuthFile(dir, l);
    const [a, b] = await pair(path);
    const writes = watchWrites(path);
    try {
      const release = tokens.hold();
      const all = Array.from({ length: 20 }, (_, i) => postJson((i % 2 ? b : a).url, '/v1/responses', BODY));
      try {
        await tokens.arrived(1);
        await until(() => a.gw.inflight === 10 && b.gw.inflight === 10, '10 requests on each', 10_000);
        // The other instance found the lock taken and waits for the holder's tokens.
        await until(() => count(a, WAITING) + count(b, WAITING) === 1, 'one instance waiting', 10_000);
      } finally {
        release();
      }
      assert.deepEqual(statuses(await Promise.all(all)), Array(20).fill(200));
      assert.equal(tokens.requests.length, 1, 'one refresh for the cluster');
      assert.equal(tokens.requests[0]!.form.refresh_token, l.refresh_token);
      const sent = backend.requests.map(bearer);
      assert.equal(sent.length, 20);
      assert.equal(new Set(sent).size, 1, 'one new token, everywhere');
      assert.notEqual(sent[0], l.access_token, 'the expired token was never sent');
      const [holder, waiter] = count(a, REFRESHED) === 1 ? [a, b] : [b, a];
      assert.equal(count(holder, REFRESHED), 1);
      assert.equal(count(waiter, REFRESHED), 0);
      assert.equal(count(waiter, ADOPTED), 1);
      const adopted = waiter.logs.find((line) => line.msg === ADOPTED)!;
      assert.deepEqual(adopted.upstreams, [NAME], 'names are not mistaken for secrets');

      assert.equal(await writes.settled(), 1, 'auth.json written once, by the refresher');
      const doc = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, unknown> };
      assert.equal(doc.tokens.access_token, sent[0]);
      assert.equal(doc.tokens.refresh_token, 'rt-acct-1-1');
      assert.equal(doc.tokens.account_id, 'acct-1');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      for (const gw of [a, b]) {
        const logs = gw.rawLogs();
        for (const s of [l.access_token, l.refresh_token, sent[0]!, 'rt-acct-1-1'])
          assert.ok(!logs.includes(s), 'a token appeared in the logs');
      }
    } finally {
      writes.close();
    }
  });

  it('a 401 on instance B after A refreshed: B takes A’s tokens from the store, never the spent refresh token', async () => {
    const l = tokens.login('acct-2');
    const backendB = await h.codexBackend(tokens.accepts);
    // B on another host: its own copy of the login, so only the store can bring it A's tokens.
    const pathA = writeAuthFile(dir, l, {}, 'a.json');
    const pathB = join(dir, 'b.json');
    copyFileSync(pathA, pathB);
    const [a, b] = await pair(pathA, pathB, backendB.baseUrl);
    tokens.revoke(l.access_token);
    // B's request is on its way with the old token when A refreshes.
    const releaseB = backendB.hold();
    const onB = postJson(b.url, '/v1/responses', BODY);
    await until(() => backendB.requests.length === 1, 'B sent the old token');
    assert.equal((await postJson(a.url, '/v1/responses', BODY)).status, 200);
    assert.equal(tokens.requests.length, 1);
    const fresh = bearer(backend.requests[1]!);
    releaseB();
    assert.equal((await onB).status, 200);
    assert.deepEqual(backendB.requests.map(bearer), [l.access_token, fresh], 'B retried with A’s token');
    assert.equal(tokens.requests.length, 1, 'the token endpoint was called once in all');
    assert.equal(count(b, REFRESHED), 0);
    assert.equal(count(b, ADOPTED), 1);
  });

  it('an instance started after the refresh with a stale copy of the login adopts the stored tokens on its first 401', async () => {
    const l = tokens.login('acct-3');
    const pathA = writeAuthFile(dir, l, {}, 'a.json');
    // Another host's copy of the same login: never written by A.
    const pathB = join(dir, 'b.json');
    copyFileSync(pathA, pathB);
    const a = await h.gatewayYaml(yaml(pathA));
    tokens.revoke(l.access_token);
    assert.equal((await postJson(a.url, '/v1/responses', BODY)).status, 200);
    assert.equal(tokens.requests.length, 1);
    // B boots now: it missed A's message and holds the old, revoked tokens.
    const b = await h.gatewayYaml(yaml(pathB));
    assert.equal((await postJson(b.url, '/v1/responses', BODY)).status, 200);
    assert.equal(tokens.requests.length, 1, 'B read the store instead of sending the spent refresh token');
    assert.deepEqual(backend.requests.map(bearer).slice(2), [l.access_token, bearer(backend.requests[1]!)]);
    assert.equal(count(b, ADOPTED), 1);
    const docB = JSON.parse(readFileSync(pathB, 'utf8')) as { tokens: Record<string, unknown> };
    assert.equal(docB.tokens.refresh_token, l.refresh_token, 'only the refresher writes its auth file');
  });

  it('a slow token endpoint: the other instance’s requests wait for the holder and succeed with its token', async () => {
    const l = tokens.login('acct-4', -60);
    const [a, b] = await pair(writeAuthFile(dir, l));
    const release = tokens.hold();
    const first = postJson(a.url, '/v1/responses', BODY);
    const others: Promise<RawResponse>[] = [];
    try {
      await tokens.arrived(1);
      for (let i = 0; i < 5; i++) others.push(postJson(b.url, '/v1/responses', BODY));
      await until(() => count(b, WAITING) === 1 && b.gw.inflight === 5, 'B waiting for A', 10_000);
      assert.equal(tokens.requests.length, 1, 'B did not refresh on its own');
      assert.equal(backend.requests.length, 0, 'nor send the expired token');
    } finally {
      release();
    }
    assert.deepEqual(statuses(await Promise.all([first, ...others])), Array(6).fill(200));
    assert.equal(tokens.requests.length, 1);
    assert.equal(new Set(backend.requests.map(bearer)).size, 1, 'B used A’s new token');
    assert.equal(count(a, REFRESHED), 1);
    assert.equal(count(b, ADOPTED), 1);
  });

  it('a terminal refresh failure disables the account on both instances; the waiter fails at once, nothing retried', async () => {
    const l = tokens.login('acct-5', -60);
    const [a, b] = await pair(writeAuthFile(dir, l));
    tokens.script = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'gone' } });
    const release = tokens.hold();
    const first = postJson(a.url, '/v1/responses', BODY);
    let second: Promise<RawResponse> | undefined;
    try {
      await tokens.arrived(1);
      second = postJson(b.url, '/v1/responses', BODY);
      await until(() => count(b, WAITING) === 1, 'B waiting for A', 10_000);
    } finally {
      release();
    }
    assert.deepEqual(statuses([await first, await second!]), [502, 502]);
    assert.equal(tokens.requests.length, 1);
    for (const gw of [a, b]) {
      await until(() => gw.gw.pool.state.disabled(NAME) === 'refresh failed: invalid_grant', 'disabled');
      assert.equal((await postJson(gw.url, '/v1/responses', BODY)).status, 503);
    }
    assert.equal(tokens.requests.length, 1, 'a dead login is never refreshed again');

    // `codex login` again, and a restart: the new login serves; the dead one's record does not stop it.
    await Promise.all([a.close(), b.close()]);
    const fresh = { ...tokens.login('acct-5', 3600), refresh_token: 'rt-acct-5-relogin' };
    tokens.register(fresh, 'acct-5');
    const c = await h.gatewayYaml(yaml(writeAuthFile(dir, fresh, {}, 'relogin.json')));
    assert.equal((await postJson(c.url, '/v1/responses', BODY)).status, 200);
    assert.equal(c.gw.pool.state.disabled(NAME), undefined);
    assert.equal(await redis.client.exists(`tapgate:disabled:${NAME}`), 0, 'no lasting shared disable');
  });

  it('Redis down: each process refreshes on its own, and once Redis is back the refresher shares its tokens', async () => {
    const l = tokens.login('acct-6', -60);
    const pathA = writeAuthFile(dir, l, {}, 'a.json');
    const pathB = join(dir, 'b.json');
    copyFileSync(pathA, pathB);
    const [a, b] = await pair(pathA, pathB);
    await redis.kill();
    assert.equal((await postJson(a.url, '/v1/responses', BODY)).status, 200);
    assert.equal(tokens.requests.length, 1);
    assert.equal(count(a, 'shared store unavailable: codex tokens refreshed by this process alone'), 1);
    const fresh = bearer(backend.requests[0]!);
    assert.notEqual(fresh, l.access_token);

    // Back, empty: A offers its tokens, B (expired, its own copy of the login) takes them.
    await redis.restart();
    await until(() => count(a, 'codex tokens refreshed alone now shared') === 1, 'A shared', 15_000);
    assert.equal((await postJson(b.url, '/v1/responses', BODY)).status, 200);
    assert.equal(bearer(backend.requests[1]!), fresh);
    assert.equal(tokens.requests.length, 1, 'B never sent the refresh token A had spent');
  });

  it('Redis down, one auth file: both instances serve; the second takes the first one’s tokens from the file', async () => {
    const l = tokens.login('acct-7', -60);
    const [a, b] = await pair(writeAuthFile(dir, l));
    await redis.kill();
    assert.equal((await postJson(a.url, '/v1/responses', BODY)).status, 200);
    assert.equal((await postJson(b.url, '/v1/responses', BODY)).status, 200);
    assert.equal(tokens.requests.length, 1);
    assert.equal(new Set(backend.requests.map(bearer)).size, 1);
    assert.equal(count(b, 'codex tokens adopted from the auth file (refreshed elsewhere)'), 1);
  });

  it('the binary with server.workers: 2 boots with a codex upstream, and its workers refresh once', async () => {
    const l = tokens.login('acct-8', -60);
    const path = writeAuthFile(dir, l);
    const port = await freePort();
    const config = join(dir, 'workers.yaml');
    writeFileSync(config, yaml(path, { server: { port, workers: 2 } }));
    const cli = runCli(['--config', config], { env: { TAPGATE_TEST_KEY: CLIENT_KEY } });
    await until(
      () => (cli.stdout().match(/"msg":"tapgate listening"/g) ?? []).length === 2,
      'both workers listening',
      20_000,
    );
    const url = `http://127.0.0.1:${port}`;
    const release = tokens.hold();
    const all: Promise<RawResponse>[] = [];
    try {
      // The kernel spreads connections: more are sent until the second worker has one and waits.
      for (;;) {
        for (let i = 0; i < 10; i++) all.push(postJson(url, '/v1/responses', BODY));
        await tokens.arrived(1);
        const waiting = await until(() => cli.stdout().includes(WAITING), 'a worker waiting', 2000).then(
          () => true,
          () => false,
        );
        if (waiting) break;
        assert.ok(all.length < 100, 'the second worker never got a request');
      }
      assert.equal(tokens.requests.length, 1);
    } finally {
      release();
    }
    assert.deepEqual(statuses(await Promise.all(all)), Array(all.length).fill(200));
    assert.equal(tokens.requests.length, 1, 'one refresh for both workers');
    assert.equal(new Set(backend.requests.map(bearer)).size, 1);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, unknown> };
    assert.equal(doc.tokens.refresh_token, 'rt-acct-8-1');
    cli.child.kill('SIGTERM');
    assert.equal((await cli.closed).code, 0);
  });
});
