/**
 * `log.format`: readable lines for a person at a terminal, JSON for everything else, and the start-up
 * line that names the URL to point clients at. The terminal case runs the real CLI under a pseudo-TTY
 * made by `script` (util-linux's bsdutils, essential on Debian, so on every Debian machine).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientUrls } from '../../core/observe/client-url.js';
import { stdoutLogStyle } from '../../core/observe/logger.js';
import { prettyLine } from '../../core/observe/pretty-lines.js';
import { BIN, killStrayClis, runCli } from '../helpers/cli.js';
import { until } from '../helpers/pool.js';
import { recordOutput, registerSecret } from '../helpers/secret-scan.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const CLIENT_KEY = 'sk-gw-logformat-0123456789';
const UPSTREAM_KEY = 'sk-upstream-logformat-abcdef';
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
/** `12:00:01.234 INFO  ` at the start of a readable line. */
const HEAD = /^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /;

describe('log.format and the start-up line', function () {
  this.timeout(30_000);

  describe('units', () => {
    it('auto is readable only on a terminal outside CI; colour only on a terminal without NO_COLOR', () => {
      assert.deepEqual(stdoutLogStyle('auto', true, {}), { pretty: true, color: true });
      assert.deepEqual(stdoutLogStyle('auto', false, {}), { pretty: false, color: false });
      assert.deepEqual(stdoutLogStyle('auto', true, { CI: 'true' }), { pretty: false, color: false });
      assert.deepEqual(stdoutLogStyle('auto', true, { NO_COLOR: '1' }), { pretty: true, color: false });
      assert.deepEqual(stdoutLogStyle('auto', true, { FORCE_COLOR: '0' }), { pretty: true, color: false });
      assert.deepEqual(stdoutLogStyle('pretty', false, {}), { pretty: true, color: false });
      assert.deepEqual(stdoutLogStyle('json', true, {}), { pretty: false, color: false });
    });

    it('formats pino lines, access lines and errors with their stack', () => {
      const info = prettyLine(
        '{"level":30,"time":"2026-12-05T07:01:02.345Z","name":"tapgate","host":"127.0.0.1","upstreams":["a","b"],"msg":"tapgate listening"}\n',
        false,
      );
      assert.equal(info, '07:01:02.345 INFO  tapgate listening host=127.0.0.1 upstreams=[a,b]\n');
      const access = prettyLine(
        '{"level":40,"time":"2026-12-05T07:01:02.345Z","name":"tapgate","reqId":"r1","method":"POST","path":"/v1/responses","status":503,"outcome":"error","ms":12.5,"model":"gpt 5","error":{"code":"UPSTREAM_CONNECTION_REFUSED","message":"Upstream refused the connection"},"msg":"request failed"}\n',
        false,
      );
      assert.equal(
        access,
        '07:01:02.345 WARN  POST /v1/responses 503 error 12.5ms reqId=r1 model="gpt 5" ' +
          'error.code=UPSTREAM_CONNECTION_REFUSED error.message="Upstream refused the connection"\n',
      );
      const err = prettyLine(
        '{"level":50,"time":"2026-12-05T07:01:02.345Z","name":"tapgate","err":{"type":"Error","message":"boom","stack":"Error: boom\\n    at f (x.ts:1:1)"},"msg":"a ready tap threw"}\n',
        false,
      );
      assert.equal(
        err,
        '07:01:02.345 ERROR a ready tap threw err=boom\n    Error: boom\n        at f (x.ts:1:1)\n',
      );
      assert.equal(prettyLine('not json\n', false), 'not json\n');
      assert.ok(
        prettyLine('{"level":30,"time":"2026-12-05T07:01:02.345Z","msg":"m"}\n', true).includes(
          '\x1b[32mINFO',
        ),
      );
    });

    it('a wildcard bind names the loopback address of its family', () => {
      const addr = (address: string, family: string): AddressInfo => ({ address, family, port: 8787 });
      assert.deepEqual(clientUrls(addr('0.0.0.0', 'IPv4')), {
        url: 'http://127.0.0.1:8787',
        baseURL: 'http://127.0.0.1:8787/v1',
      });
      assert.equal(clientUrls(addr('::', 'IPv6')).baseURL, 'http://[::1]:8787/v1');
      assert.equal(clientUrls(addr('10.1.2.3', 'IPv4')).url, 'http://10.1.2.3:8787');
      assert.equal(clientUrls(addr('::1', 'IPv6')).url, 'http://[::1]:8787');
    });
  });

  describe('the CLI', () => {
    let tmp: string;
    let upstream: TestUpstream;

    before(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'tapgate-logformat-'));
      registerSecret(CLIENT_KEY, UPSTREAM_KEY);
      upstream = await startUpstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream('resp_fmt').join(''));
      });
    });
    after(async () => {
      await upstream.close();
      rmSync(tmp, { recursive: true, force: true });
    });
    afterEach(() => killStrayClis());

    function config(name: string, log: string): string {
      const file = join(tmp, name);
      writeFileSync(
        file,
        `server:
  host: 0.0.0.0
  port: 0
auth:
  keys:
    - name: laptop
      key: ${CLIENT_KEY}
${log}upstreams:
  - name: up1
    type: openai
    baseUrl: ${upstream.url}/v1
    apiKey: ${UPSTREAM_KEY}
plugins:
  - responses-routes
  - request-id
  - error-codes
`,
      );
      return file;
    }

    /** A request whose model name carries the upstream key: the line must mask it. */
    async function sendLeakyRequest(port: number): Promise<void> {
      const res = await fetch(`http://127.0.0.1:${port}/v1/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: `gpt-x ${UPSTREAM_KEY}`, input: 'hi', stream: true }),
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }

    it('on a pipe: JSON lines, the listening line with url and baseURL, then the clients line', async () => {
      const cli = runCli(['--config', config('json.yaml', '')]);
      const listening = await cli.logLine('tapgate listening');
      const port = listening.port as number;
      assert.equal(listening.host, '0.0.0.0');
      assert.equal(listening.url, `http://127.0.0.1:${port}`);
      assert.equal(listening.baseURL, `http://127.0.0.1:${port}/v1`);
      const base = `http://127.0.0.1:${port}/v1`;
      await until(() => cli.stdout().includes('point clients at'), 'the clients line', 5000);
      const lines = cli.stdout().trim().split('\n');
      for (const line of lines) JSON.parse(line); // every line is JSON
      const clients = lines
        .map((l) => JSON.parse(l) as { msg: string })
        .find((l) => l.msg.startsWith('point'));
      assert.match(clients!.msg, new RegExp(`^point clients at ${base.replace(/[/.]/g, '\\$&')} `));
      assert.ok(clients!.msg.includes(`openai_base_url="${base}"`), clients!.msg);
      cli.child.kill('SIGTERM');
      assert.equal((await cli.closed).code, 0);
    });

    it('log.format: pretty on a pipe: readable lines without colour, secrets still masked', async () => {
      const cli = runCli(['--config', config('pretty.yaml', 'log:\n  format: pretty\n')]);
      await until(() => /tapgate listening .*port=\d+/.test(cli.stdout()), 'the listening line', 10_000);
      const port = Number(/tapgate listening .*port=(\d+)/.exec(cli.stdout())![1]);
      await sendLeakyRequest(port);
      await until(() => cli.stdout().includes('POST /v1/responses 200'), 'the access line', 5000);
      cli.child.kill('SIGTERM');
      assert.equal((await cli.closed).code, 0);
      const out = cli.stdout();
      assert.doesNotMatch(out, ANSI, 'no colour on a pipe');
      for (const line of out.trim().split('\n')) assert.match(line, HEAD, `not a readable line: ${line}`);
      const access = out.split('\n').find((l) => l.includes('POST /v1/responses 200'))!;
      assert.match(access, / ok [\d.]+ms .*client=laptop .*upstream=up1/);
      assert.ok(access.includes('[redacted]'), access);
      assert.ok(!out.includes(UPSTREAM_KEY) && !out.includes(CLIENT_KEY), 'a secret was logged');
      assert.match(out, new RegExp(`point clients at http://127\\.0\\.0\\.1:${port}/v1 `));
    });

    /** Runs the CLI on a pseudo-terminal (`script`); stdout is the terminal's output. */
    function runOnTty(file: string, env: Record<string, string>) {
      const cmd = `exec ${process.execPath} ${BIN} --config ${file}`;
      // A developer's terminal: no CI, no colour opt-out (CI's own run sets both).
      const childEnv: NodeJS.ProcessEnv = { ...process.env, TAPGATE_KEY: '', ...env };
      for (const k of ['CI', 'NO_COLOR', 'FORCE_COLOR']) if (!(k in env)) delete childEnv[k];
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
        env: childEnv,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      recordOutput('tty', () => out);
      const closed = once(child, 'close');
      return { child, out: () => out, closed };
    }

    it('on a terminal (auto): readable, coloured lines, the access line included', async () => {
      const tty = runOnTty(config('tty.yaml', ''), {});
      try {
        await until(() => /tapgate listening.*port=\S*?(\d+)/.test(tty.out()), 'the listening line', 10_000);
        const plain = () => tty.out().replace(ANSI, '');
        const port = Number(/tapgate listening .*port=(\d+)/.exec(plain())![1]);
        await sendLeakyRequest(port);
        await until(() => plain().includes('POST /v1/responses 200'), 'the access line', 5000);
        assert.ok(tty.out().includes('\x1b[32mINFO'), 'levels in colour');
        const lines = plain().replace(/\r/g, '').trim().split('\n');
        for (const line of lines) assert.match(line, HEAD, `not a readable line: ${line}`);
        assert.ok(lines.some((l) => l.includes(`point clients at http://127.0.0.1:${port}/v1`)));
        assert.ok(!tty.out().includes(UPSTREAM_KEY), 'a secret was logged');
      } finally {
        tty.child.kill('SIGTERM');
        await tty.closed;
      }
    });

    it('on a terminal with CI set (auto): JSON', async () => {
      const tty = runOnTty(config('tty-ci.yaml', ''), { CI: 'true' });
      try {
        await until(() => tty.out().includes('point clients at'), 'the clients line', 10_000);
        const lines = tty.out().replace(/\r/g, '').trim().split('\n');
        const listening = JSON.parse(lines[0]!) as { msg: string; baseURL: string };
        assert.equal(listening.msg, 'tapgate listening');
        assert.match(listening.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      } finally {
        tty.child.kill('SIGTERM');
        await tty.closed;
      }
    });
  });
});
