/**
 * Issue 14: with `server.workers: 2` both workers write their own batches into one database file.
 * Requests spread over both (each on a new connection; the kernel hands connections to either
 * worker), and after a graceful stop the file holds exactly one record per request, with the tokens
 * the upstream reported. Which process sent each upstream request is read from the socket table, so
 * the test knows both wrote.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { until } from '../helpers/pool.js';
import { upstreamKey } from '../helpers/proxy-config.js';
import { MESSAGE_ITEM, responseObject, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/redis.js';
import { readRecords } from '../helpers/usage.js';

const N = 400;
const CONCURRENCY = 16;
const TOKENS = {
  input_tokens: 13,
  input_tokens_details: { cached_tokens: 3 },
  output_tokens: 4,
  total_tokens: 17,
};

function post(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/responses',
        agent: false,
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'gpt-w', input: 'hi' }));
  });
}

/** The pid owning each local port of the TCP connections to `port` (from `ss -tnp`). */
function ownersOfConnectionsTo(port: number): Map<number, number> {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], {
    encoding: 'utf8',
  });
  const owners = new Map<number, number>();
  for (const line of out.split('\n')) {
    const local = /\S+:(\d+)\s+\S+:\d+/.exec(line);
    const pid = /pid=(\d+)/.exec(line);
    if (local && pid) owners.set(Number(local[1]), Number(pid[1]));
  }
  return owners;
}

describe('usage: two workers, one database', function () {
  this.timeout(120_000);
  let dir: string;
  let upstream: TestUpstream;
  const clientPorts: number[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-usage-workers-'));
    upstream = await startUpstream((req, res) => {
      clientPorts.push(req.socket.remotePort!);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(responseObject('resp_w', 'completed', { output: [MESSAGE_ITEM], usage: TOKENS })),
      );
    });
  });
  after(async () => {
    killStrayClis();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${N} requests over both workers: exactly ${N} records after a graceful stop`, async () => {
    const port = await freePort();
    const file = join(dir, 'gw.yaml');
    writeFileSync(
      file,
      YAML.stringify({
        server: { host: '127.0.0.1', port, workers: 2 },
        auth: { keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}' }] },
        usage: { path: 'usage.db', flushInterval: '100ms' },
        upstreams: [{ name: 'up', type: 'openai', baseUrl: `${upstream.url}/v1`, apiKey: upstreamKey('up') }],
        plugins: ['responses-routes', 'request-id'],
      }),
    );
    const cli = runCli(['--config', file], { env: { TAPGATE_TEST_KEY: CLIENT_KEY } });
    await until(
      () => (cli.stdout().match(/"msg":"tapgate listening"/g) ?? []).length === 2,
      'both workers listen',
      30_000,
    );

    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) {
          next++;
          statuses.push(await post(port));
        }
      }),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(statuses.length, N);
    // Each worker keeps its upstream connections open (keep-alive): their owners are the workers.
    const owners = ownersOfConnectionsTo(Number(new URL(upstream.url).port));
    const writers = new Set(clientPorts.map((p) => owners.get(p)).filter((pid) => pid !== undefined));
    assert.equal(writers.size, 2, `requests reached the upstream from ${writers.size} worker(s)`);
    assert.ok(!writers.has(cli.child.pid!), 'the primary serves nothing');

    cli.child.kill('SIGTERM');
    const { code } = await cli.closed;
    assert.equal(code, 0, cli.stderr());
    const records = readRecords(join(dir, 'usage.db'));
    assert.equal(records.length, N);
    assert.equal(new Set(records.map((r) => r.requestId)).size, N);
    assert.equal(
      records.reduce((s, r) => s + r.total, 0),
      N * 17,
    );
    assert.ok(
      records.every((r) => r.key === 'tester' && r.account === 'up' && r.input === 13 && r.cachedInput === 3),
    );
  });
});
