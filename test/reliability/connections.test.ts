/**
 * Connections and failed logins cannot exhaust the gateway (issue 11, items 7 and 8).
 *  - 7: a refused request (401, the keyless 403) closes its connection, and a request pipelined behind
 *    it is not served; `server.maxConnections` caps the connections held (default from the fd limit);
 *    running out of file descriptors is the gateway's 503, never an upstream failure or cooldown.
 *  - 8: failed authentication is limited per source address (client keys, and the dashboard's login
 *    and bearer check on their own), with one access line per address and window plus one summary;
 *    the failure table stays bounded; the dashboard's admin token needs 16 characters.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { FailureThrottle, type FailureSummary } from '../../core/guard/auth-throttle.js';
import { defaultMaxConnections, fdSoftLimit, parseFdLimit } from '../../core/guard/connection-limit.js';
import { ADMIN_TOKEN, dashboardConfig } from '../helpers/dashboard-feed.js';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/pool.js';
import { connectRaw, deadline, parseHttpResponse, rawHttpRequest, readToEnd } from '../helpers/raw.js';
import { responseObject, startUpstream, type TestUpstream } from '../helpers/upstream.js';

const BODY = JSON.stringify({ model: 'gpt-test', input: 'hi' });
const KEY = { authorization: `Bearer ${CLIENT_KEY}` };
const WRONG_KEY = 'sk-wrong-key-connections-0123';

const h = new Harness();

function completedUpstream(name = 'resp_1'): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(responseObject(name, 'completed')));
  });
}

function gatewayYaml(upstreamUrl: string, server = '', auth = '', extra = ''): string {
  return `
server:
  host: 127.0.0.1
  port: 0
${server}
auth:
  keys:
    - name: tester
      key: \${TAPGATE_TEST_KEY}
${auth}
upstreams:
  - name: up1
    type: openai
    baseUrl: ${upstreamUrl}/v1
    apiKey: sk-upstream-conn-secret-abcdef
plugins:
  - responses-routes
  - request-id
  - error-codes
${extra}`;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request from a chosen loopback source address, on its own connection. */
function requestFrom(
  baseUrl: string,
  localAddress: string,
  opts: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: string },
): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({
      hostname: url.hostname,
      port: url.port,
      localAddress,
      method: opts.method ?? 'POST',
      path: opts.path,
      headers: {
        ...opts.headers,
        ...(opts.body === undefined ? {} : { 'content-length': opts.body.length }),
      },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.end(opts.body);
  });
}

const postFrom = (baseUrl: string, address: string, headers: http.OutgoingHttpHeaders) =>
  requestFrom(baseUrl, address, {
    path: '/v1/responses',
    headers: { 'content-type': 'application/json', ...headers },
    body: BODY,
  });

describe('reliability: connections and failed logins', () => {
  afterEach(() => h.cleanup());

  describe('a refused request closes its connection (item 7)', () => {
    it('a 401 says connection: close and the server ends the socket; a pipelined request is not served', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(await startGateway(gatewayYaml(up.url)));
      // Keep-alive (HTTP/1.1, no Connection header): a wrong key, then a valid request on the same socket.
      const socket = await connectRaw(g.url);
      const host = new URL(g.url).host;
      socket.write(
        Buffer.concat([
          rawHttpRequest('GET', '/v1/models', host, { authorization: `Bearer ${WRONG_KEY}` }),
          rawHttpRequest('GET', '/v1/models', host, KEY),
        ]),
      );
      // Before: the socket stayed open for keepAliveTimeout (65 s), and the second request was proxied.
      const bytes = await deadline(readToEnd(socket), 3000, 'the server closing the socket after a 401');
      const first = parseHttpResponse(bytes);
      assert.equal(first.status, 401);
      assert.equal(first.headers.connection, 'close');
      assert.equal(bytes.toString('latin1').match(/HTTP\/1\.1 /g)?.length, 1, 'exactly one response');
      assert.equal(up.requests.length, 0, 'the request pipelined behind the 401 reached the upstream');

      // A request without a key, sent alone, is closed after its answer too.
      const alone = await connectRaw(g.url);
      alone.write(
        rawHttpRequest('POST', '/v1/responses', host, { 'content-type': 'application/json' }, BODY),
      );
      const r = parseHttpResponse(await deadline(readToEnd(alone), 3000, 'close after a keyless 401'));
      assert.equal(r.status, 401);
      assert.equal(r.headers.connection, 'close');
    });

    it('the keyless gateway’s 403 to a browser closes the connection too', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(await startGateway(gatewayYaml(up.url).replace(/auth:\n {2}keys:\n.*\n.*\n/, '')));
      const socket = await connectRaw(g.url);
      socket.write(
        rawHttpRequest('POST', '/v1/responses', new URL(g.url).host, {
          origin: 'https://evil.example',
          'content-type': 'application/json',
        }),
      );
      const r = parseHttpResponse(await deadline(readToEnd(socket), 3000, 'close after the 403'));
      assert.equal(r.status, 403);
      assert.equal(r.headers.connection, 'close');
    });
  });

  describe('server.maxConnections (item 7)', () => {
    it('40 idle sockets without a key: at most 20 are held, and a request works once they go', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(await startGateway(gatewayYaml(up.url, '  maxConnections: 20')));
      assert.equal(g.logs.find((l) => l.msg === 'tapgate listening')?.maxConnections, 20);
      const sockets: net.Socket[] = [];
      let closed = 0;
      for (let i = 0; i < 40; i++) {
        const s = await connectRaw(g.url);
        s.on('error', () => {});
        s.on('close', () => closed++);
        sockets.push(s);
      }
      // Before: all 40 were held, until headersTimeout.
      await until(() => closed >= 20, 'the sockets over the cap closed', 5000);
      const held = await new Promise<number>((r, j) =>
        g.gw.server.getConnections((err, n) => (err ? j(err) : r(n))),
      );
      assert.ok(held <= 20, `${held} connections held`);
      assert.equal(closed, 20, 'the sockets within the cap stay open');
      await until(
        () => g.logs.some((l) => l.msg?.toString().startsWith('connection limit reached')),
        'the dropped connections logged',
      );
      for (const s of sockets) s.destroy();
      await until(() => g.gw.server.connections === 0 || closed === 40, 'the held sockets closed');
      const ok = await postFrom(g.url, '127.0.0.1', KEY);
      assert.equal(ok.status, 200, ok.body);
    });

    it('the default comes from the fd soft limit: max(64, floor((limit − 64) / 2)), logged at boot', async () => {
      assert.equal(defaultMaxConnections(1024), 480);
      assert.equal(defaultMaxConnections(65_536), 32_736);
      assert.equal(defaultMaxConnections(100), 64);
      assert.equal(defaultMaxConnections(20), 64);
      const limits =
        'Limit                     Soft Limit           Hard Limit           Units\n' +
        'Max open files            4096                 524288               files\n';
      assert.equal(parseFdLimit(limits), 4096);
      assert.equal(
        parseFdLimit('Max open files            unlimited            unlimited            files\n'),
        undefined,
      );
      assert.equal(fdSoftLimit('/nonexistent/limits'), 1024);
      const up = h.track(await completedUpstream());
      const g = h.track(await startGateway(gatewayYaml(up.url)));
      const listening = g.logs.find((l) => l.msg === 'tapgate listening')!;
      assert.equal(listening.fdLimit, fdSoftLimit());
      assert.equal(listening.maxConnections, defaultMaxConnections(fdSoftLimit()));
      assert.equal(g.gw.server.maxConnections, defaultMaxConnections(fdSoftLimit()));
    });
  });

  describe('out of file descriptors (item 7)', () => {
    let tmp: string | undefined;
    afterEach(() => {
      killStrayClis();
      if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
      tmp = undefined;
    });

    /** A keep-alive connection that got an answer (held by the gateway), or undefined if it was closed unanswered. */
    async function hold(port: number): Promise<net.Socket | undefined> {
      const socket = await connectRaw(`http://127.0.0.1:${port}`);
      return new Promise((resolve) => {
        let bytes = Buffer.alloc(0);
        const onData = (c: Buffer) => {
          bytes = Buffer.concat([bytes, c]);
          if (bytes.indexOf('\r\n\r\n') < 0 || !parseHttpResponse(bytes).complete) return;
          socket.off('data', onData);
          assert.notEqual(parseHttpResponse(bytes).headers.connection, 'close');
          resolve(socket);
        };
        socket.on('data', onData);
        socket.on('error', () => {});
        socket.once('close', () => resolve(undefined));
        socket.write(rawHttpRequest('GET', '/not-a-route', `127.0.0.1:${port}`, KEY));
      });
    }

    const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).map(Number);

    it('EMFILE on the upstream socket: 503 naming the gateway, no cooldown, and the gateway lives on', async function () {
      if (process.platform !== 'linux') this.skip();
      try {
        execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
      } catch {
        this.skip();
      }
      this.timeout(30_000);
      const up1 = h.track(await completedUpstream('resp_up1'));
      const up2 = h.track(await completedUpstream('resp_up2'));
      tmp = mkdtempSync(join(tmpdir(), 'tapgate-emfile-'));
      const config = join(tmp, 'config.yaml');
      writeFileSync(
        config,
        YAML.stringify({
          // A cap above what the descriptors allow: the case the cap's default exists to avoid.
          server: { host: '127.0.0.1', port: 0, maxConnections: 5000 },
          auth: { keys: [{ name: 'tester', key: '${TAPGATE_KEY}' }] },
          // Fill-first with one attempt: a cooled up1 would send the next request to up2.
          pool: { strategy: 'fill-first' },
          proxy: { maxAttempts: 1 },
          upstreams: [
            { name: 'up1', type: 'openai', baseUrl: `${up1.url}/v1`, apiKey: 'sk-upstream-emfile-1' },
            { name: 'up2', type: 'openai', baseUrl: `${up2.url}/v1`, apiKey: 'sk-upstream-emfile-2' },
          ],
          plugins: ['responses-routes', 'request-id', 'error-codes'],
        }),
      );
      const cli = runCli(['--config', config], { env: { TAPGATE_KEY: CLIENT_KEY } });
      const port = (await cli.logLine('tapgate listening')).port as number;
      const pid = cli.child.pid!;
      // Booted: now only a few descriptors are left, the way a low `ulimit -n` leaves them under load.
      // (The limit bounds descriptor numbers; one inherited far above the rest may stay open.)
      const open = new Set(fds(pid));
      let limit = 0;
      for (let free = 0; free < 12; limit++) if (!open.has(limit)) free++;
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);

      const held: net.Socket[] = [];
      for (;;) {
        const s = await hold(port);
        if (s === undefined) break; // accept failed: libuv closed it (its reserve descriptor absorbs EMFILE)
        held.push(s);
        assert.ok(held.length < 100, 'the descriptors never ran out');
      }
      // Every number below the limit is taken (libuv reopens its reserve descriptor just after it closed
      // the refused connection: wait for that too).
      const used = () => fds(pid).filter((fd) => fd < limit).length;
      await until(() => used() === limit, 'every descriptor in use', 5000);
      // One connection goes: its descriptor takes the next client's connection, none is left for the upstream.
      held.pop()!.destroy();
      await until(() => used() === limit - 1, 'the gateway closed the released connection', 5000);
      const socket = await connectRaw(`http://127.0.0.1:${port}`);
      socket.write(
        rawHttpRequest(
          'POST',
          '/v1/responses',
          `127.0.0.1:${port}`,
          { ...KEY, 'content-type': 'application/json', connection: 'close' },
          BODY,
        ),
      );
      const r = parseHttpResponse(await deadline(readToEnd(socket), 5000, 'the answer without descriptors'));
      // Before: 502 "Upstream connection reset before a response", and up1 cooled for 30 s.
      assert.equal(r.status, 503, r.body.toString());
      const error = (JSON.parse(r.body.toString()) as { error: Record<string, unknown> }).error;
      assert.equal(error.type, 'server_error');
      assert.equal(error.code, 'server_is_overloaded');
      assert.match(String(error.message), /^The gateway is out of file descriptors \(EMFILE\)/);
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(up1.requests.length + up2.requests.length, 0);

      for (const s of held.splice(0)) s.destroy();
      await until(() => used() < limit - 4, 'the gateway closed the released connections', 5000);
      const ok = await postFrom(`http://127.0.0.1:${port}`, '127.0.0.1', KEY);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(up1.requests.length, 1, 'up1 was not cooled: it serves the next request at once');
      assert.equal(up2.requests.length, 0);

      // The access line is written through the line batcher: wait for it.
      await until(() => cli.stdout().includes('"status":503'), 'the 503 access line');
      const lines = cli
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const alarms = lines.filter((l) => String(l.msg).startsWith('gateway out of resources'));
      assert.equal(alarms.length, 1, 'one error line');
      assert.equal(alarms[0]!.level, 50);
      const access = lines.find((l) => l.status === 503)!;
      assert.equal((access.error as Record<string, unknown>).code, 'GATEWAY_RESOURCES_EXHAUSTED');
      assert.equal(cli.child.exitCode, null, 'the gateway is still running');
      cli.child.kill('SIGTERM');
      assert.equal((await cli.closed).code, 0);
    });
  });

  describe('failed authentication per source address (item 8)', () => {
    it('over the limit, even the right key gets 429 from that address only; the window frees it', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(
        await startGateway(
          gatewayYaml(
            up.url,
            '',
            '  bruteForce:\n    maxFailures: 5\n    window: 2s',
            'log:\n  level: info\n',
          ),
        ),
      );
      for (let i = 0; i < 5; i++) {
        const r = await postFrom(g.url, '127.0.0.2', { authorization: `Bearer ${WRONG_KEY}-${i}` });
        assert.equal(r.status, 401, `wrong key ${i}`);
        assert.equal(r.headers.connection, 'close');
      }
      // Before: the sixth guess was checked like the first (401, or 200 for the right key).
      const blocked = await postFrom(g.url, '127.0.0.2', KEY);
      assert.equal(blocked.status, 429, blocked.body);
      assert.deepEqual(JSON.parse(blocked.body), {
        error: {
          message: `Too many failed authentication attempts from this address; retry in ${blocked.headers['retry-after']}s`,
          type: 'rate_limit_error',
          param: null,
          code: 'too_many_auth_failures',
        },
      });
      const retryAfter = Number(blocked.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 2, `retry-after ${retryAfter}`);
      assert.equal(blocked.headers.connection, 'close');
      assert.equal((await postFrom(g.url, '127.0.0.2', { authorization: 'Bearer x' })).status, 429);
      // Another address is not affected.
      const other = await postFrom(g.url, '127.0.0.3', KEY);
      assert.equal(other.status, 200, other.body);
      assert.equal(up.requests.length, 1, 'only the other address reached the upstream');

      // The window ends: one summary line for the address, and it is served again.
      await until(
        () => g.logs.some((l) => l.msg === 'authentication failures'),
        'the summary line after the window',
        6000,
      );
      const again = await postFrom(g.url, '127.0.0.2', KEY);
      assert.equal(again.status, 200, again.body);

      const summaries = g.logs.filter((l) => l.msg === 'authentication failures');
      assert.equal(summaries.length, 1);
      assert.deepEqual(
        { ...summaries[0], level: undefined, time: undefined, name: undefined },
        {
          level: undefined,
          time: undefined,
          name: undefined,
          msg: 'authentication failures',
          address: '127.0.0.2',
          failures: 7,
          windowMs: 2000,
          blocked: 2,
        },
      );
      assert.equal(summaries[0]!.level, 40);
      // One access line for the address's window (its first failure), instead of seven.
      const refused = g.logs.filter((l) => l.status === 401 || l.status === 429);
      assert.equal(refused.length, 1, JSON.stringify(refused));
      assert.equal(refused[0]!.status, 401);
      const raw = g.rawLogs();
      assert.ok(!raw.includes(WRONG_KEY), 'a presented key was logged');
      assert.ok(!raw.includes(CLIENT_KEY), 'the client key was logged');
    });

    it('a WebSocket upgrade counts and is refused the same way', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(
        await startGateway(gatewayYaml(up.url, '', '  bruteForce:\n    maxFailures: 2\n    window: 1m')),
      );
      const ws = {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      };
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const socket = await connectRaw(g.url);
        socket.write(
          rawHttpRequest('GET', '/v1/responses', new URL(g.url).host, {
            ...ws,
            authorization: 'Bearer nope',
          }),
        );
        statuses.push(parseHttpResponse(await deadline(readToEnd(socket), 3000, 'upgrade refusal')).status);
      }
      assert.deepEqual(statuses, [401, 401, 429]);
      // And a plain request from that address is refused too: one table for both.
      assert.equal((await postFrom(g.url, '127.0.0.1', KEY)).status, 429);
    });

    it('maxFailures 0: never refused, but the log lines are still aggregated', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(
        await startGateway(gatewayYaml(up.url, '', '  bruteForce:\n    maxFailures: 0\n    window: 1s')),
      );
      for (let i = 0; i < 20; i++) assert.equal((await postFrom(g.url, '127.0.0.4', {})).status, 401);
      assert.equal((await postFrom(g.url, '127.0.0.4', KEY)).status, 200);
      await until(() => g.logs.some((l) => l.msg === 'authentication failures'), 'the summary', 6000);
      assert.equal(g.logs.filter((l) => l.status === 401).length, 1);
      assert.equal(g.logs.find((l) => l.msg === 'authentication failures')!.failures, 20);
    });

    it('the table stays bounded with thousands of addresses, and counts are reported, not lost', () => {
      const summaries: FailureSummary[] = [];
      const t = new FailureThrottle({ maxFailures: 3, windowMs: 60_000, maxAddresses: 1000 }, (s) =>
        summaries.push(s),
      );
      const now = 1_000_000;
      for (let i = 0; i < 5000; i++) {
        const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
        assert.equal(t.fail(address, now + i), true, 'first failure of its window');
        assert.equal(t.fail(address, now + i), false);
        assert.ok(t.size <= 1000, `size ${t.size}`);
      }
      assert.equal(t.size, 1000);
      // The 4000 oldest windows were dropped, each reported with its two failures.
      assert.equal(summaries.length, 4000);
      assert.deepEqual(summaries[0], { address: '10.0.0.0', failures: 2, windowMs: 60_000, blocked: 0 });

      // Blocking: the third failure reaches the limit; refusals count; the window's end frees it.
      const b = new FailureThrottle({ maxFailures: 3, windowMs: 10_000 }, (s) => summaries.push(s));
      for (let i = 0; i < 3; i++) {
        assert.equal(b.refusal('a', now), 0);
        b.fail('a', now);
      }
      assert.equal(b.refusal('a', now + 1), 10);
      assert.equal(b.refusal('a', now + 8_999), 2);
      assert.equal(b.refusal('b', now), 0);
      assert.equal(b.refusal('a', now + 10_000), 0, 'the window is over');
      b.sweep(now + 10_000);
      assert.equal(b.size, 0);
      assert.deepEqual(summaries.at(-1), { address: 'a', failures: 5, windowMs: 10_000, blocked: 2 });
      // A single failure needs no summary: its access line says it all.
      b.fail('c', now);
      b.sweep(now + 20_000);
      assert.deepEqual(summaries.at(-1), { address: 'a', failures: 5, windowMs: 10_000, blocked: 2 });
      // maxFailures 0 never refuses.
      const off = new FailureThrottle({ maxFailures: 0, windowMs: 10_000 }, () => {});
      for (let i = 0; i < 100; i++) off.fail('a', now);
      assert.equal(off.refusal('a', now), 0);
    });
  });

  describe('the dashboard (item 8)', () => {
    async function dashboard(upstreamUrl: string): Promise<TestGateway> {
      return h.track(
        await startGateway(
          dashboardConfig({
            upstreams: [{ name: 'up1', baseUrl: `${upstreamUrl}/v1`, apiKey: 'sk-upstream-dash-conn' }],
            auth: { bruteForce: { maxFailures: 3, window: '1m' } },
          }),
        ),
      );
    }
    const form = (token: string) => ({
      path: '/dashboard/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(token)}`,
    });

    it('wrong logins from one address are throttled, and so is its bearer check; another address is not', async () => {
      const up = h.track(await completedUpstream());
      const g = await dashboard(up.url);
      for (let i = 0; i < 3; i++) {
        const r = await requestFrom(g.url, '127.0.0.2', form(`wrong-token-${i}-abcdefgh`));
        assert.equal(r.status, 401);
        assert.equal(r.headers.connection, 'close');
      }
      // Before: every guess was checked, at thousands per second.
      const right = await requestFrom(g.url, '127.0.0.2', form(ADMIN_TOKEN));
      assert.equal(right.status, 429);
      assert.ok(Number(right.headers['retry-after']) > 0);
      assert.equal(right.headers['set-cookie'], undefined);
      const bearer = await requestFrom(g.url, '127.0.0.2', {
        method: 'GET',
        path: '/dashboard',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(bearer.status, 429);
      // The dashboard's table is its own: the client key still works from that address.
      assert.equal((await postFrom(g.url, '127.0.0.2', KEY)).status, 200);
      const elsewhere = await requestFrom(g.url, '127.0.0.3', form(ADMIN_TOKEN));
      assert.equal(elsewhere.status, 303);
      assert.ok(elsewhere.headers['set-cookie'] !== undefined);
      // One access line for the address's failures; the rest in the summary written at close.
      assert.equal(g.logs.filter((l) => l.status === 401 || l.status === 429).length, 1);
      await g.close();
      const summary = g.logs.find((l) => l.msg === 'authentication failures')!;
      assert.equal(summary.plugin, 'dashboard');
      assert.equal(summary.address, '127.0.0.2');
      assert.equal(summary.failures, 5);
      assert.equal(summary.blocked, 2);
      assert.ok(!g.rawLogs().includes('wrong-token-'), 'a presented token was logged');
    });

    it('the admin token needs 16 characters: 3 or 15 is a boot error naming the key and line, 16 boots', async () => {
      const up = h.track(await completedUpstream());
      for (const token of ['abc', 'fifteen-chars-x']) {
        const yaml = dashboardConfig({
          upstreams: [{ name: 'up1', baseUrl: `${up.url}/v1`, apiKey: 'sk-up-x' }],
        }).replace(ADMIN_TOKEN, token);
        const err = await startGateway(yaml).then(
          async (g) => {
            await g.close();
            return assert.fail(`a ${token.length}-character token booted`);
          },
          (e: unknown) => e as Error,
        );
        assert.match(err.message, /plugins\[3\]\.options\.token/, err.message);
        assert.match(err.message, /:\d+/, 'a line number');
        assert.match(err.message, /the admin token needs at least 16 characters/);
        assert.ok(!err.message.includes(token), 'the token itself is not repeated');
      }
      const yaml = dashboardConfig({
        upstreams: [{ name: 'up1', baseUrl: `${up.url}/v1`, apiKey: 'sk-up-x' }],
      }).replace(ADMIN_TOKEN, 'sixteen-chars-xy');
      const g = h.track(await startGateway(yaml));
      assert.ok(g.url);
    });
  });
});
