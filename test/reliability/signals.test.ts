/**
 * Signals a supervisor or a user may send (issue 11, item 15), through the real CLI. SIGHUP and
 * SIGUSR2 used to end the process at once (exit 129/140) and cut every open stream; SIGUSR1 opened
 * Node's inspector on 127.0.0.1:9229. Now SIGHUP reloads the config and the other two are logged and
 * ignored, while a stream runs to its `response.completed`; no inspector port opens, and SIGQUIT drains like SIGTERM. With two workers,
 * the same signals to the whole process group (a closed terminal sends SIGHUP to all) leave both
 * serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, killStrayClis, runCli, startStream } from '../helpers/cli.js';
import { closedPort, deadline, parseSse } from '../helpers/raw.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * TCP ports the process `pid` listens on (an inspector would add 9229): its socket inodes from
 * /proc/<pid>/fd, matched against the LISTEN rows of /proc/net/tcp and tcp6.
 */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // The descriptor closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      // f[1] local address:port (hex), f[3] state (0A = LISTEN), f[9] inode.
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

describe('reliability: signals (issue 11)', function () {
  this.timeout(60_000);
  let dir: string;
  let upstream: TestUpstream;
  /** Each stream waits for `release()` after its first content events, so a signal lands mid-stream. */
  const releases: (() => void)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-signals-'));
    upstream = await startUpstream(async (_req, res) => {
      const frames = happyStream('resp_signals');
      writeSseHead(res);
      res.write(frames.slice(0, 5).join(''));
      await new Promise<void>((r) => releases.push(r));
      res.end(frames.slice(5).join(''));
    });
  });
  afterEach(() => killStrayClis());
  after(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(server: string): string {
    const file = join(dir, `signals-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      `server: { host: 127.0.0.1, ${server} }\nupstreams: [{ name: up1, type: openai, baseUrl: "${upstream.url}/v1", apiKey: sk-upstream-signals-key }]\nplugins: [responses-routes, request-id, error-codes]\n`,
    );
    return file;
  }

  it('SIGHUP (a reload), SIGUSR1 and SIGUSR2 mid-stream: logged, the stream completes, no inspector', async () => {
    const cli = runCli(['--config', config('port: 0')]);
    const listening = await cli.logLine('tapgate listening');
    const port = listening.port as number;
    const pid = cli.child.pid!;
    const s = await startStream(port);
    for (const signal of SIGNALS) process.kill(pid, signal);
    // Each signal is acknowledged in the log, and the process is still here.
    for (const signal of SIGNALS) {
      await deadline(
        (async () => {
          while (!cli.stdout().includes(`"signal":"${signal}"`)) await new Promise((r) => setTimeout(r, 20));
        })(),
        5000,
        `${signal} logged`,
      );
    }
    assert.equal(cli.child.exitCode, null, 'the gateway exited');
    // SIGHUP is a reload (test/reload/ covers what it changes): the unchanged file applies as is.
    await cli.logLine('config reloaded');
    assert.ok(listeningPorts(pid).includes(port), 'the port check sees the gateway’s own listener');
    assert.deepEqual(
      listeningPorts(pid).filter((p) => p === 9229),
      [],
      'the inspector opened',
    );
    releases.shift()!();
    await deadline(s.ended, 5000, 'the stream');
    assert.equal(parseSse(s.body()).at(-1)?.event, 'response.completed');
    const after = await fetch(`http://127.0.0.1:${port}/v1/models`);
    assert.equal(after.status, 200);
    process.kill(pid, 'SIGTERM');
    assert.equal((await cli.closed).code, 0);
  });

  it('SIGQUIT drains like SIGTERM: the running stream finishes, then exit 0', async () => {
    const cli = runCli(['--config', config('port: 0, drainTimeout: 10s')]);
    const port = (await cli.logLine('tapgate listening')).port as number;
    const s = await startStream(port);
    process.kill(cli.child.pid!, 'SIGQUIT');
    await cli.logLine('shutting down');
    releases.shift()!();
    await deadline(s.ended, 5000, 'the stream');
    assert.equal(parseSse(s.body()).at(-1)?.event, 'response.completed');
    assert.equal((await deadline(cli.closed, 10_000, 'exit')).code, 0);
  });

  it('two workers: SIGHUP, SIGUSR1 and SIGUSR2 to the whole process group leave every process serving', async () => {
    const port = await closedPort();
    // detached: its own process group, as a terminal's job would be.
    const child = spawn(process.execPath, [BIN, '--config', config(`port: ${port}, workers: 2`)], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await deadline(
        (async () => {
          while ((out.match(/"msg":"tapgate listening"/g) ?? []).length < 2)
            await new Promise((r) => setTimeout(r, 20));
        })(),
        20_000,
        'two workers listening',
      );
      for (const signal of SIGNALS) process.kill(-child.pid!, signal);
      // Three processes (primary and two workers) acknowledge each signal.
      await deadline(
        (async () => {
          while (SIGNALS.some((s) => (out.match(new RegExp(`"signal":"${s}"`, 'g')) ?? []).length < 3))
            await new Promise((r) => setTimeout(r, 20));
        })(),
        10_000,
        `every process logs each signal\n${out}`,
      );
      assert.equal(child.exitCode, null, 'the primary exited');
      assert.doesNotMatch(out, /exited \(SIG|starting another/, 'a worker died');
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/v1/models`);
        assert.equal(r.status, 200);
      }
      process.kill(-child.pid!, 'SIGTERM');
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 0, out);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  });
});
