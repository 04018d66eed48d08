/**
 * One `codex exec --json` run: a fresh HOME and CODEX_HOME holding the given config, an empty
 * working directory, a minimal environment, its own process group (killed on timeout) and, when
 * strace works, the audit of every address it tried.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLIENT_KEY } from '../../helpers/gateway.js';
import { KEY_ENV, SCENARIO_ENV } from './common.js';
import { escapesIn, STRACE_ARGS, type Trap } from './isolation.js';

/** Hard limit for one Codex run; the process group is killed after it. */
export const RUN_TIMEOUT_MS = Number(process.env.TAPGATE_CODEX_RUN_TIMEOUT_MS || 60_000);

export interface RawRun {
  /** Codex's JSONL events. */
  events: Record<string, unknown>[];
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
  /** Non-loopback addresses Codex or its children tried (strace audit), if audited. */
  escapes: string[] | undefined;
}

export interface Launch {
  bin: string;
  /** The scenario's directory: home/, cwd/, command.txt, strace.log. */
  dir: string;
  config: string;
  /** The value of the scenario header. */
  scenario: string;
  prompt: string;
  trap: Trap;
  strace: boolean;
}

function parseEvents(stdout: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a JSONL event
    }
  }
  return events;
}

export function runCodex(l: Launch): Promise<RawRun> {
  const home = path.join(l.dir, 'home');
  const codexHome = path.join(home, '.codex');
  const cwd = path.join(l.dir, 'cwd');
  mkdirSync(codexHome, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(codexHome, 'config.toml'), l.config);
  // A minimal environment: no inherited API keys, proxies, config or auth of the real user.
  const trap = l.trap.url;
  const noProxy = '127.0.0.1,localhost,::1';
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    CODEX_HOME: codexHome,
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    [KEY_ENV]: CLIENT_KEY,
    [SCENARIO_ENV]: l.scenario,
    HTTP_PROXY: trap,
    HTTPS_PROXY: trap,
    ALL_PROXY: trap,
    http_proxy: trap,
    https_proxy: trap,
    all_proxy: trap,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
  };
  const args = [
    'exec',
    '--json',
    '--strict-config',
    '--skip-git-repo-check',
    '--ephemeral',
    '--ignore-rules',
    '-s',
    'read-only',
    '--color',
    'never',
    '--disable',
    'unbounded_connection_retries',
    '-C',
    cwd,
    l.prompt,
  ];
  const traceFile = path.join(l.dir, 'strace.log');
  const command = l.strace ? [...STRACE_ARGS, traceFile, l.bin, ...args] : [l.bin, ...args];
  writeFileSync(path.join(l.dir, 'command.txt'), command.join(' ') + '\n');
  const started = performance.now();
  return new Promise((resolve) => {
    // Its own process group, so that a timeout kills Codex and everything it started.
    const child = spawn(command[0]!, command.slice(1), {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, RUN_TIMEOUT_MS);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        events: parseEvents(stdout),
        stdout,
        stderr,
        exitCode,
        signal,
        timedOut,
        ms: performance.now() - started,
        escapes: l.strace ? escapesIn(traceFile) : undefined,
      });
    });
  });
}
