/** Runs the real `tapgate` binary (app/bin.js) as a child process, with its output captured. */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, statSync } from 'node:fs';
import YAML from 'yaml';
import { recordOutput, registerSecretsIn } from './secret-scan.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'app/bin.js');

export interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first pino line on stdout whose `msg` is `msg`. */
  logLine(msg: string): Promise<Record<string, unknown>>;
  /** Resolves when the process has exited and its output is closed. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

/** Starts `tapgate <args>`; `TAPGATE_KEY` is empty unless `env` sets it. */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Cli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, TAPGATE_KEY: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const config = args[args.findIndex((a) => a === '--config' || a === '-c') + 1];
  if (config !== undefined) registerConfigSecrets(resolve(opts.cwd ?? ROOT, config));
  let out = '';
  let err = '';
  recordOutput('stdout', () => out);
  recordOutput('stderr', () => err);
  const waiters: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  const seen: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const parsed = JSON.parse(line) as Record<string, unknown>;
      seen.push(parsed);
      for (const w of waiters.filter((w) => w.msg === parsed.msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const closed = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logLine: (msg) => {
      const already = seen.find((l) => l.msg === msg);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        waiters.push({ msg, resolve });
        void closed.then(() =>
          reject(new Error(`tapgate exited before logging "${msg}"\nstdout:\n${out}\nstderr:\n${err}`)),
        );
      });
    },
    closed,
  };
}

/** Kills every gateway process a test left running (an `afterEach` safety net). */
export function killStrayClis(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** The secrets a config file holds must never show in the process's output. */
function registerConfigSecrets(file: string): void {
  try {
    // Some tests' point is a FIFO or a device as the config: reading those would hang the test.
    const st = statSync(file);
    if (!st.isFile() || st.size > 1024 * 1024) return;
    registerSecretsIn(YAML.parse(readFileSync(file, 'utf8')));
  } catch {
    // A missing or broken config is some tests' point; it holds no secret to register.
  }
}

/** Starts a streamed Responses request and resolves once the first events have arrived. */
export function startStream(
  port: number,
): Promise<{ body: () => string; ended: Promise<void>; status: number }> {
  return new Promise((resolveStarted, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/responses',
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        const ended = once(res, 'end').then(() => undefined);
        let started = false;
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
          if (!started && body.includes('event: response.in_progress')) {
            started = true;
            resolveStarted({ body: () => body, ended, status: res.statusCode ?? 0 });
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'gpt-test', input: 'hi', stream: true }));
  });
}
