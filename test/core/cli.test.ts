import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killStrayClis, runCli, startStream } from '../helpers/cli.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

let tmp: string;

const run = (args: string[], cwd?: string) => runCli(args, { cwd });

function writeConfig(name: string, yaml: string): string {
  const file = join(tmp, name);
  writeFileSync(file, yaml);
  return file;
}

/** A config for a spawned gateway: no client keys (loopback only), one upstream at `upstreamUrl`. */
function gatewayYaml(upstreamUrl: string, server = ''): string {
  return `server:
  host: 127.0.0.1
  port: 0
${server}upstreams:
  - name: up1
    type: openai
    baseUrl: ${upstreamUrl}/v1
    apiKey: sk-upstream-cli-test
plugins:
  - responses-routes
  - request-id
  - error-codes
`;
}

/** Sends a request on a new connection: resolves with `status <n>` if it is served, else the error code. */
function tryRequest(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v1/models', agent: false }, (res) => {
      res.resume();
      resolve(`status ${String(res.statusCode)}`);
    });
    req.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
  });
}

describe('CLI (app/bin.js)', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tapgate-cli-'));
  });
  after(() => {
    killStrayClis();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('--help prints the usage and exits 0', async () => {
    const cli = run(['--help']);
    const { code } = await cli.closed;
    assert.equal(code, 0);
    assert.match(cli.stdout(), /^Usage: tapgate /);
    assert.match(cli.stdout(), /--config PATH/);
    assert.match(cli.stdout(), /--port N/);
    assert.equal(cli.stderr(), '');
  });

  it('a bad config file: exit 1, and stderr names the key path and line', async () => {
    const file = writeConfig(
      'bad.yaml',
      'server:\n  host: 127.0.0.1\n  prot: 8080\nproxy:\n  maxAttempts: 0\n',
    );
    const cli = run(['--config', file]);
    const { code } = await cli.closed;
    assert.equal(code, 1);
    assert.equal(
      cli.stderr(),
      `tapgate: ${file}: invalid configuration\n  - ${file}:3:3 server.prot: unknown key\n  - ${file}:5:16 proxy.maxAttempts: Too small: expected number to be >=1\n`,
    );
    assert.equal(cli.stdout(), '', 'nothing is logged: the gateway never started');
  });

  it('a plugin error: exit 1, and stderr names the error and the line', async () => {
    const file = writeConfig('bad-plugin.yaml', 'plugins:\n  - responses-routes\n  - no-such-plugin\n');
    const cli = run(['-c', file]);
    const { code } = await cli.closed;
    assert.equal(code, 1);
    assert.match(
      cli.stderr(),
      new RegExp(
        `^tapgate: PluginNotFoundError: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:5 unknown plugin "no-such-plugin"`,
      ),
    );
  });

  it('a missing config file: exit 1, and stderr names the path', async () => {
    const cli = run(['--config', 'missing/tapgate.yaml'], tmp);
    const { code } = await cli.closed;
    assert.equal(code, 1);
    assert.equal(
      cli.stderr(),
      `tapgate: ${join(tmp, 'missing/tapgate.yaml')}: invalid configuration\n  - ${join(tmp, 'missing/tapgate.yaml')} (root): cannot read the file (ENOENT)\n`,
    );
  });

  describe('running', () => {
    let upstream: TestUpstream;
    /** Releases the upstream responses that are holding their stream open. */
    const releases: (() => void)[] = [];

    before(async () => {
      upstream = await startUpstream(async (_req, res) => {
        const frames = happyStream('resp_cli');
        writeSseHead(res);
        res.write(frames[0]! + frames[1]!);
        await new Promise<void>((r) => releases.push(r));
        if (res.destroyed) return;
        for (const f of frames.slice(2)) res.write(f);
        res.end();
      });
    });
    after(async () => {
      for (const r of releases.splice(0)) r();
      await upstream.close();
    });

    it('--port overrides server.port', async () => {
      // server.port is taken: the gateway only boots if --port wins.
      const taken = net.createServer();
      await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
      try {
        const takenPort = (taken.address() as net.AddressInfo).port;
        const file = writeConfig(
          'port.yaml',
          gatewayYaml(upstream.url).replace('port: 0', `port: ${takenPort}`),
        );
        const cli = run(['--config', file, '--port', '0']);
        const listening = await cli.logLine('tapgate listening');
        assert.equal(typeof listening.port, 'number');
        assert.notEqual(listening.port, takenPort);
        const res = await fetch(`http://127.0.0.1:${String(listening.port)}/v1/models`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
        cli.child.kill('SIGTERM');
        assert.deepEqual(await cli.closed, { code: 0, signal: null });
        assert.match(cli.stdout(), /"msg":"tapgate stopped"/);
      } finally {
        taken.close();
      }
    });

    it('SIGTERM: stops accepting, lets the in-flight stream finish, then exits 0', async () => {
      const file = writeConfig('drain.yaml', gatewayYaml(upstream.url, '  drainTimeout: 10s\n'));
      const cli = run(['--config', file]);
      const port = (await cli.logLine('tapgate listening')).port as number;

      const stream = await startStream(port);
      assert.equal(stream.status, 200);
      assert.equal(releases.length, 1, 'the upstream is holding the stream open');

      cli.child.kill('SIGTERM');
      const shutting = await cli.logLine('shutting down');
      assert.equal(shutting.inflight, 1);
      assert.equal(shutting.signal, 'SIGTERM');
      // The line is written just before the listener closes, so a connection may still complete its
      // handshake in the kernel's backlog and then be reset; either way no new request is served.
      const late = await tryRequest(port);
      assert.ok(
        ['ECONNREFUSED', 'ECONNRESET'].includes(late),
        `a new request while draining was not refused: ${late}`,
      );
      assert.equal(cli.child.exitCode, null, 'still running while the stream is in flight');

      releases.shift()!();
      await stream.ended;
      assert.match(stream.body(), /event: response\.completed\n/);
      assert.doesNotMatch(stream.body(), /response\.failed/);
      assert.deepEqual(await cli.closed, { code: 0, signal: null });
      assert.match(cli.stdout(), /"msg":"tapgate stopped"/);
      assert.doesNotMatch(cli.stdout(), /drain timeout/);
    });

    it('SIGTERM: a stream still running at the drain timeout ends with response.failed (server_shutting_down), then exit 0', async () => {
      const file = writeConfig('drain-timeout.yaml', gatewayYaml(upstream.url, '  drainTimeout: 200ms\n'));
      const cli = run(['--config', file]);
      const port = (await cli.logLine('tapgate listening')).port as number;

      const stream = await startStream(port);
      cli.child.kill('SIGTERM');
      await cli.logLine('shutting down');
      // The upstream is never released: the drain timeout has to end the stream.
      await stream.ended;
      const body = stream.body();
      assert.match(body, /event: response\.in_progress\n/);
      assert.doesNotMatch(body, /response\.completed/);
      const failed = /event: response\.failed\ndata: (.*)\n\n$/.exec(body);
      assert.ok(failed, `the stream ends with response.failed:\n${body}`);
      const data = JSON.parse(failed[1]!) as {
        sequence_number: number;
        response: { status: string; error: { code: string; message: string } };
      };
      assert.equal(data.response.status, 'failed');
      assert.equal(data.response.error.code, 'server_shutting_down');
      assert.equal(data.response.error.message, 'Gateway shut down before the response finished');
      // Numbered after the last forwarded event (1) and the default errorEvent (2).
      assert.match(
        body,
        /event: error\ndata: \{"type":"error","sequence_number":2,"code":"server_shutting_down"/,
      );
      assert.equal(data.sequence_number, 3, 'numbered after the last forwarded event and the error event');

      assert.deepEqual(await cli.closed, { code: 0, signal: null });
      const warn = await cli.logLine('drain timeout: ended requests still in flight');
      assert.equal(warn.count, 1);
    });
  });
});
