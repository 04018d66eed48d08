/**
 * Opt-in end-to-end check: the real Codex CLI (`@openai/codex` 0.169.0, a native binary) against the
 * gateway, one `codex exec --json` run per upstream failure scenario. Codex must print the
 * upstream's real reason, never "stream closed before response.completed".
 *
 *   npm run e2e:codex                        every scenario
 *   npm run e2e:codex -- stall malformed     only these
 *   npm run e2e:codex -- --no-gateway        baseline: Codex straight at the scripted upstream
 *
 * Not part of `npm test`: it installs a ~400 MB binary on first use. See README.md beside this file,
 * which also explains the network-safety layers set up here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../../helpers/gateway.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  type TestUpstream,
} from '../../helpers/upstream.js';

const CODEX_VERSION = '0.169.0';
const SCRIPT = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(SCRIPT), '../../..');
const CACHE_DIR = path.resolve(
  process.env.TAPGATE_CODEX_DIR || path.join(REPO, 'node_modules/.cache/tapgate-codex'),
);
/** Hard limit for one Codex run; the process group is killed after it. */
const RUN_TIMEOUT_MS = Number(process.env.TAPGATE_CODEX_RUN_TIMEOUT_MS || 60_000);
/** The gateway's upstream idle timeout: the stall scenario waits this long. */
const GATEWAY_IDLE = '1500ms';
/** Codex's own idle timeout, far above the gateway's, so that what Codex reports is the gateway's verdict. */
const CODEX_IDLE_MS = 20_000;
const MODEL = 'gpt-5.5';
const KEY_ENV = 'TAPGATE_E2E_KEY';
const SCENARIO_ENV = 'TAPGATE_E2E_SCENARIO';
const SCENARIO_HEADER = 'x-tapgate-e2e-scenario';
const IN_NETNS_ENV = 'TAPGATE_CODEX_IN_NETNS';
const BAD_MESSAGE = 'stream closed before response.completed';

const log = (msg: string) => process.stderr.write(`[e2e:codex] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Installing and finding Codex

/** The launcher's own table (bin/codex.js): platform → optional dependency holding the binary. */
const PLATFORM_PACKAGES: Record<string, { pkg: string; triple: string }> = {
  'linux-x64': { pkg: '@openai/codex-linux-x64', triple: 'x86_64-unknown-linux-musl' },
  'linux-arm64': { pkg: '@openai/codex-linux-arm64', triple: 'aarch64-unknown-linux-musl' },
  'darwin-x64': { pkg: '@openai/codex-darwin-x64', triple: 'x86_64-apple-darwin' },
  'darwin-arm64': { pkg: '@openai/codex-darwin-arm64', triple: 'aarch64-apple-darwin' },
};

/** The native binary that `bin/codex.js` would exec, if the cache holds Codex at the pinned version. */
function findCodex(): string | undefined {
  const launcherPkg = path.join(CACHE_DIR, 'node_modules/@openai/codex/package.json');
  if (!existsSync(launcherPkg)) return undefined;
  const version = (JSON.parse(readFileSync(launcherPkg, 'utf8')) as { version: string }).version;
  if (version !== CODEX_VERSION) {
    log(`the cache holds @openai/codex ${version}, not ${CODEX_VERSION}`);
    return undefined;
  }
  const platform = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (platform === undefined) throw new Error(`no Codex build for ${process.platform}-${process.arch}`);
  const bin = path.join(CACHE_DIR, 'node_modules', platform.pkg, 'vendor', platform.triple, 'bin', 'codex');
  return existsSync(bin) ? bin : undefined;
}

function ensureCodex(): string {
  const found = findCodex();
  if (found !== undefined) {
    log(`using cached Codex ${CODEX_VERSION}: ${found}`);
    return found;
  }
  log(
    `Codex ${CODEX_VERSION} is not in ${CACHE_DIR}: installing it from the npm registry (~400 MB unpacked)`,
  );
  mkdirSync(CACHE_DIR, { recursive: true });
  const args = [
    'install',
    '--no-save',
    '--no-audit',
    '--no-fund',
    '--prefix',
    CACHE_DIR,
    `@openai/codex@${CODEX_VERSION}`,
  ];
  log(`$ npm ${args.join(' ')}`);
  const r = spawnSync('npm', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0)
    throw new Error(`npm install failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
  const bin = findCodex();
  if (bin === undefined)
    throw new Error(`npm installed @openai/codex, but no native binary was found under ${CACHE_DIR}`);
  log(`installed: ${bin}`);
  return bin;
}

// ---------------------------------------------------------------------------------------------
// Network isolation, layer 3: this script re-runs itself in a new network namespace holding only
// loopback, so even a Codex that ignored its config could not reach past 127.0.0.1.

/** Returns when this process should run the scenarios; otherwise runs them in a child and exits. */
function isolateNetwork(): void {
  const mode = process.env.TAPGATE_CODEX_NETNS || 'on';
  if (process.env[IN_NETNS_ENV] === '1') {
    const external = Object.entries(os.networkInterfaces()).filter(([, addrs]) =>
      addrs?.some((a) => !a.internal),
    );
    if (external.length > 0) {
      throw new Error(
        `expected only loopback in the network namespace, found ${external.map(([n]) => n).join(', ')}`,
      );
    }
    log('network: inside a private network namespace (loopback only)');
    return;
  }
  if (mode === 'off') {
    log(
      'network: TAPGATE_CODEX_NETNS=off: no network namespace; the Codex config and the proxy trap are the guards',
    );
    return;
  }
  const unshareArgs = process.getuid?.() === 0 ? ['--net'] : ['--net', '--map-root-user'];
  const probe = spawnSync('unshare', [...unshareArgs, '--', 'ip', 'link', 'set', 'lo', 'up'], {
    encoding: 'utf8',
  });
  if (probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status}`);
    throw new Error(
      `cannot make a network namespace with \`unshare ${unshareArgs.join(' ')}\` and \`ip\` (${why}). ` +
        'Set TAPGATE_CODEX_NETNS=off to rely on the Codex config alone (see test/e2e/codex/README.md).',
    );
  }
  log(`network: re-running in a new network namespace: unshare ${unshareArgs.join(' ')}, ip link set lo up`);
  const inner = [process.execPath, ...process.execArgv, SCRIPT, ...process.argv.slice(2)];
  const r = spawnSync(
    'unshare',
    [...unshareArgs, '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...inner],
    {
      stdio: 'inherit',
      env: { ...process.env, [IN_NETNS_ENV]: '1' },
    },
  );
  process.exit(r.status ?? 1);
}

// ---------------------------------------------------------------------------------------------
// The scripted upstream: its behaviour per request comes from the scenario header, which Codex
// sends through `env_http_headers` and the gateway forwards.

type UpstreamScript = (res: http.ServerResponse) => void;

const created = frame('response.created', 0, { response: responseObject('resp_up1', 'in_progress') });
const inProgress = frame('response.in_progress', 1, { response: responseObject('resp_up1', 'in_progress') });
const itemAdded = frame('response.output_item.added', 2, {
  output_index: 0,
  item: { ...MESSAGE_ITEM, status: 'in_progress', content: [] },
});
const delta = frame('response.output_text.delta', 3, {
  item_id: 'msg_1',
  output_index: 0,
  content_index: 0,
  delta: 'Hel',
});

const RATE_LIMIT_MESSAGE =
  'Rate limit reached for gpt-5.5 in organization org-e2e on tokens per min: try again in 1.5s';
const SERVER_ERROR_MESSAGE = 'The server had an error while processing your request (e2e)';
const CONTEXT_MESSAGE =
  'Your input exceeds the context window of this model. Please adjust your input and try again.';

const UPSTREAM: Record<string, UpstreamScript> = {
  happy(res) {
    writeSseHead(res, { 'x-request-id': 'upstream-req-happy' });
    for (const f of happyStream()) res.write(f);
    res.end();
  },
  'error-event'(res) {
    writeSseHead(res);
    const error = { type: 'tokens', code: 'rate_limit_exceeded', message: RATE_LIMIT_MESSAGE, param: null };
    res.write(
      created +
        inProgress +
        `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 2, error })}\n\n`,
    );
    // The socket is held open: the gateway has to end the stream itself.
  },
  'tcp-drop'(res) {
    writeSseHead(res);
    res.write(created + inProgress + itemAdded + delta, () => res.socket?.destroy());
  },
  'eof-no-terminal'(res) {
    writeSseHead(res);
    res.end(created + inProgress + itemAdded + delta);
  },
  stall(res) {
    writeSseHead(res);
    res.write(created + inProgress);
  },
  malformed(res) {
    writeSseHead(res);
    res.write(
      created +
        inProgress +
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n',
    );
  },
  'context-length'(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'failed', {
      error: { code: 'context_length_exceeded', message: CONTEXT_MESSAGE },
    });
    res.write(created + inProgress + frame('response.failed', 2, { response }));
  },
  'failed-held-open'(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'failed', {
      error: { code: 'server_error', message: SERVER_ERROR_MESSAGE },
    });
    // Held open after the terminal event: the gateway must close promptly.
    res.write(created + inProgress + itemAdded + delta + frame('response.failed', 4, { response }));
  },
  incomplete(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'incomplete', {
      incomplete_details: { reason: 'max_output_tokens' },
      usage: USAGE,
    });
    res.write(created + inProgress + frame('response.incomplete', 2, { response }));
  },
  'http-429'(res) {
    res.writeHead(429, {
      'content-type': 'application/json',
      'retry-after': '1',
      'x-request-id': 'upstream-req-429',
    });
    const error = {
      message: 'Rate limit reached for gpt-5.5. Please try again in 1s.',
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    };
    res.end(JSON.stringify({ error }));
  },
};

// ---------------------------------------------------------------------------------------------
// What Codex must print, read from its JSONL stdout

interface CodexRun {
  events: Record<string, unknown>[];
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
  /** Requests the upstream saw during this run. */
  upstreamRequests: number;
  /** When they arrived (ms, performance.now()). */
  upstreamTimes: number[];
  /** The x-request-id the upstream received: the gateway's request id. */
  requestId: string | undefined;
  /** Non-loopback addresses Codex or its children tried (strace audit), if audited. */
  escapes: string[] | undefined;
}

interface Scenario {
  name: string;
  what: string;
  /** The upstream script, when not the one named like the scenario. */
  upstream?: string;
  /** Codex's stream_max_retries (default 0), and so how many upstream requests to expect. */
  retries?: number;
  /** Returns why the run fails the scenario, or undefined. */
  check(run: CodexRun): string | undefined;
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const eventTypes = (run: CodexRun) => run.events.map((e) => e.type).join(', ') || 'no events';

/** The message of the `turn.failed` event, else of the last `error` event. */
function failureMessage(run: CodexRun): string | undefined {
  const failed = run.events.findLast((e) => e.type === 'turn.failed');
  if (failed !== undefined) return str((failed.error as Record<string, unknown> | undefined)?.message);
  return str(run.events.findLast((e) => e.type === 'error')?.message);
}

function agentMessages(run: CodexRun): string[] {
  return run.events
    .filter((e) => e.type === 'item.completed')
    .map((e) => e.item as Record<string, unknown> | undefined)
    .filter((i) => i?.type === 'agent_message')
    .map((i) => str(i?.text) ?? '');
}

/** A failed turn whose message contains `want` (a string, or a pattern built from the run). */
function failsWith(
  name: string,
  what: string,
  want: string | ((run: CodexRun) => RegExp),
  extra: Partial<Scenario> = {},
): Scenario {
  return {
    name,
    what,
    ...extra,
    check(run) {
      const reason = extra.check?.(run);
      if (reason !== undefined) return reason;
      if (!run.events.some((e) => e.type === 'turn.failed'))
        return `no turn.failed (events: ${eventTypes(run)})`;
      const msg = failureMessage(run);
      if (msg === undefined) return 'turn.failed without a message';
      const ok = typeof want === 'string' ? msg.includes(want) : want(run).test(msg);
      if (!ok)
        return `${JSON.stringify(msg)} lacks ${typeof want === 'string' ? JSON.stringify(want) : String(want(run))}`;
      if (run.exitCode === 0) return 'exit code 0 after a failed turn';
      return undefined;
    },
  };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const SCENARIOS: Scenario[] = [
  {
    name: 'happy',
    what: 'complete stream → turn.completed, "Hello!"',
    check(run) {
      if (!run.events.some((e) => e.type === 'turn.completed'))
        return `no turn.completed (events: ${eventTypes(run)})`;
      if (!agentMessages(run).includes('Hello!'))
        return `agent messages ${JSON.stringify(agentMessages(run))}`;
      if (run.exitCode !== 0) return `exit code ${run.exitCode}`;
      return undefined;
    },
  },
  failsWith('error-event', 'event: error mid-stream (socket held open)', RATE_LIMIT_MESSAGE),
  failsWith('error-event-retry', 'the same, Codex retrying once (stream_max_retries=1)', RATE_LIMIT_MESSAGE, {
    upstream: 'error-event',
    retries: 1,
    check(run) {
      // Codex parses "try again in 1.5s" from the message and waits that long before its retry.
      const gap = (run.upstreamTimes[1] ?? 0) - (run.upstreamTimes[0] ?? 0);
      return run.upstreamTimes.length === 2 && gap < 1400
        ? `Codex retried after ${Math.round(gap)} ms, not ~1.5 s`
        : undefined;
    },
  }),
  failsWith('tcp-drop', 'TCP connection dropped mid-stream', 'upstream connection lost'),
  failsWith(
    'eof-no-terminal',
    'clean EOF without a terminal event',
    'upstream closed the stream without a terminal event',
  ),
  failsWith('stall', `silence past the gateway idle timeout (${GATEWAY_IDLE})`, () => /stalled/),
  failsWith('malformed', 'a frame that is not JSON', () => /malformed event/),
  failsWith(
    'context-length',
    'response.failed context_length_exceeded',
    "Codex ran out of room in the model's context window",
  ),
  failsWith('failed-held-open', 'response.failed server_error, socket held open', SERVER_ERROR_MESSAGE),
  failsWith(
    'incomplete',
    'response.incomplete max_output_tokens (held open)',
    'Incomplete response returned, reason: max_output_tokens',
  ),
  failsWith('http-429', 'HTTP 429 + Retry-After before the first byte', (run) =>
    run.requestId === undefined
      ? /429 Too Many Requests, request id: \S+/
      : new RegExp(`429 Too Many Requests, request id: ${escapeRegExp(run.requestId)}`),
  ),
];

/** Checks that hold for every scenario. */
function commonChecks(run: CodexRun, scenario: Scenario): string | undefined {
  if (run.timedOut) return `Codex still running after ${RUN_TIMEOUT_MS} ms: killed`;
  if (run.escapes !== undefined && run.escapes.length > 0)
    return `tried to leave loopback: ${run.escapes.join(', ')}`;
  if ((run.stdout + run.stderr).includes(BAD_MESSAGE)) return `printed "${BAD_MESSAGE}"`;
  const expected = 1 + (scenario.retries ?? 0);
  if (run.upstreamRequests !== expected)
    return `the upstream saw ${run.upstreamRequests} requests, expected ${expected} (${eventTypes(run)})`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Network isolation, layer 2: a loopback trap as HTTP(S)_PROXY and as the ChatGPT/OpenAI base URLs.
// Codex honours the proxy variables (NO_PROXY exempts loopback), so any request meant for the
// internet lands here, is refused and is counted as a failure.

interface Trap {
  url: string;
  hits: string[];
  close(): Promise<void>;
}

async function startTrap(): Promise<Trap> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.headers.host ?? ''}${req.url}`);
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('tapgate e2e: traffic off loopback is not allowed\n');
  });
  server.on('connect', (req, socket) => {
    hits.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Network isolation, layer 1: Codex's own config. `--strict-config` makes Codex reject any key it
 * does not know, so a misspelt safety setting fails the run instead of being ignored.
 */
function codexConfig(baseUrl: string, trapUrl: string, retries: number): string {
  return `# Written by test/e2e/codex/run.ts. Codex may talk to the gateway on 127.0.0.1 and nothing else.
model = "${MODEL}"
model_provider = "tapgate"
check_for_update_on_startup = false
web_search = "disabled"
# Anything meant for the ChatGPT backend or the OpenAI API lands on the loopback trap.
chatgpt_base_url = "${trapUrl}/backend-api/"
openai_base_url = "${trapUrl}/v1"

# Seen on the wire without these: OTLP metrics to ab.chatgpt.com (the default metrics exporter).
[analytics]
enabled = false

[otel]
exporter = "none"
trace_exporter = "none"
metrics_exporter = "none"
log_user_prompt = false

[feedback]
enabled = false

[history]
persistence = "none"

[features]
# Seen on the wire without it: plugin marketplace sync with github.com, api.github.com and chatgpt.com.
plugins = false
# The rest reach remote services only in some setups; off all the same.
remote_plugin = false
plugin_sharing = false
apps = false
tool_suggest = false
skill_mcp_dependency_install = false
image_generation = false
browser_use = false
browser_use_external = false
computer_use = false
in_app_browser = false
in_app_updates = false
api_key_model_discovery = false
daemon_auto_start = false
memories = false
# Codex retries a refused connection forever by default.
unbounded_connection_retries = false

[model_providers.tapgate]
name = "tapgate"
base_url = "${baseUrl}"
env_key = "${KEY_ENV}"
wire_api = "responses"
supports_websockets = false
request_max_retries = 0
stream_max_retries = ${retries}
stream_idle_timeout_ms = ${CODEX_IDLE_MS}
env_http_headers = { "${SCENARIO_HEADER}" = "${SCENARIO_ENV}" }
`;
}

/** strace, when it works here: every connect/sendto/sendmsg of Codex and its children is checked. */
function straceAvailable(): boolean {
  if (process.env.TAPGATE_CODEX_STRACE === '0') return false;
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=connect', '-o', '/dev/null', 'true'], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** Non-loopback IPv4/IPv6 destinations in an strace log. */
function escapesIn(traceFile: string): string[] {
  if (!existsSync(traceFile)) return ['(no strace output)'];
  const out = new Set<string>();
  for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
    if (!/\b(connect|sendto|sendmsg)\(/.test(line)) continue;
    const v4 = /sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(line);
    const v6 = /sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"/.exec(line);
    const m = v4 ?? v6;
    if (m !== null && !LOOPBACK.test(m[2]!)) out.add(`${m[2]}:${m[1]}`);
  }
  return [...out];
}

type RawRun = Omit<CodexRun, 'upstreamRequests' | 'upstreamTimes' | 'requestId'>;

function runCodex(
  bin: string,
  scenario: Scenario,
  baseUrl: string,
  trap: Trap,
  workRoot: string,
  strace: boolean,
): Promise<RawRun> {
  const name = scenario.name;
  const home = path.join(workRoot, name, 'home');
  const codexHome = path.join(home, '.codex');
  const cwd = path.join(workRoot, name, 'cwd');
  mkdirSync(codexHome, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(codexHome, 'config.toml'), codexConfig(baseUrl, trap.url, scenario.retries ?? 0));
  // A minimal environment: no inherited API keys, proxies, config or auth of the real user.
  const noProxy = '127.0.0.1,localhost,::1';
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    CODEX_HOME: codexHome,
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    [KEY_ENV]: CLIENT_KEY,
    [SCENARIO_ENV]: scenario.upstream ?? name,
    HTTP_PROXY: trap.url,
    HTTPS_PROXY: trap.url,
    ALL_PROXY: trap.url,
    http_proxy: trap.url,
    https_proxy: trap.url,
    all_proxy: trap.url,
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
    'Say hello.',
  ];
  const traceFile = path.join(workRoot, name, 'strace.log');
  const command = strace
    ? ['strace', '-f', '-qq', '-e', 'trace=connect,sendto,sendmsg', '-o', traceFile, bin, ...args]
    : [bin, ...args];
  writeFileSync(path.join(workRoot, name, 'command.txt'), command.join(' ') + '\n');
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
      const events: Record<string, unknown>[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a JSONL event
        }
      }
      const escapes = strace ? escapesIn(traceFile) : undefined;
      resolve({
        events,
        stdout,
        stderr,
        exitCode,
        signal,
        timedOut,
        ms: performance.now() - started,
        escapes,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------

interface Row {
  result: 'PASS' | 'FAIL';
  scenario: string;
  time: string;
  what: string;
  said: string;
}

function printTable(rows: Row[]): void {
  const cols = ['result', 'scenario', 'time', 'what'] as const;
  const head: Row = {
    result: 'RESULT' as 'PASS',
    scenario: 'SCENARIO',
    time: 'TIME',
    what: 'CASE',
    said: 'CODEX SAID (or why it failed)',
  };
  const width = (c: (typeof cols)[number]) => Math.max(...[head, ...rows].map((r) => r[c].length));
  for (const r of [head, ...rows])
    console.log(cols.map((c) => r[c].padEnd(width(c))).join('  ') + '  ' + r.said);
}

async function main(): Promise<number> {
  const wall = performance.now();
  const argv = process.argv.slice(2);
  const direct = argv.includes('--no-gateway');
  const only = argv.filter((a) => !a.startsWith('-'));
  const unknown = only.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    log(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return 2;
  }
  if (process.env[IN_NETNS_ENV] !== '1') ensureCodex();
  isolateNetwork();
  const bin = findCodex();
  if (bin === undefined) throw new Error(`no Codex binary in ${CACHE_DIR}`);
  const strace = straceAvailable();
  log(
    strace
      ? 'network: strace audits every connect/sendto of Codex and its children'
      : 'network: strace audit off (TAPGATE_CODEX_STRACE=0 or no working strace)',
  );

  const workRoot = mkdtempSync(path.join(os.tmpdir(), 'tapgate-e2e-codex-'));
  const trap = await startTrap();
  const arrivals: number[] = [];
  const upstream: TestUpstream = await startUpstream((req, res) => {
    arrivals.push(performance.now());
    const script = UPSTREAM[String(req.headers[SCENARIO_HEADER])];
    if (script !== undefined) return script(res);
    res.writeHead(400, { 'content-type': 'application/json' });
    const message = `e2e upstream: no scenario in ${SCENARIO_HEADER} (${req.method} ${req.url})`;
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }));
  });
  log(`upstream ${upstream.url}, trap ${trap.url}, work dir ${workRoot}`);
  if (direct)
    log('--no-gateway: Codex talks straight to the scripted upstream (a baseline: failures expected)');

  const rows: Row[] = [];
  const keep = process.env.TAPGATE_CODEX_KEEP === '1';
  try {
    for (const scenario of SCENARIOS) {
      if (only.length > 0 && !only.includes(scenario.name)) continue;
      // A fresh gateway per scenario, so that no cooldown from one scenario reaches the next.
      const gateway: TestGateway | undefined = direct
        ? undefined
        : await startGateway(
            basicConfig(upstream.url).replace(
              'plugins:',
              `proxy:\n  timeouts: { idle: ${GATEWAY_IDLE} }\nplugins:`,
            ),
          );
      const baseUrl = `${gateway?.url ?? upstream.url}/v1`;
      const before = upstream.requests.length;
      let run: CodexRun;
      try {
        log(`${scenario.name}: codex exec → ${baseUrl}`);
        const raw = await runCodex(bin, scenario, baseUrl, trap, workRoot, strace);
        const seen = upstream.requests.slice(before);
        run = {
          ...raw,
          upstreamRequests: seen.length,
          upstreamTimes: arrivals.slice(before),
          requestId: gateway ? str(seen[0]?.headers['x-request-id']) : undefined,
        };
      } finally {
        await gateway?.close();
      }
      const reason = commonChecks(run, scenario) ?? scenario.check(run);
      const said = reason ?? failureMessage(run) ?? agentMessages(run).join(' | ');
      rows.push({
        result: reason === undefined ? 'PASS' : 'FAIL',
        scenario: scenario.name,
        time: `${(run.ms / 1000).toFixed(1)}s`,
        what: scenario.what,
        said,
      });
      const file = path.join(workRoot, scenario.name, 'run.txt');
      const gatewayLogs = gateway?.rawLogs() ?? '(no gateway)';
      writeFileSync(
        file,
        `exit=${run.exitCode} signal=${run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}\n--- gateway log\n${gatewayLogs}\n`,
      );
      log(
        `${scenario.name}: ${reason === undefined ? 'PASS' : `FAIL: ${reason}; see ${file}`} (${Math.round(run.ms)} ms)`,
      );
    }
  } finally {
    await upstream.close();
    await trap.close();
  }

  console.log('');
  printTable(rows);
  const failed = rows.filter((r) => r.result === 'FAIL').length;
  if (trap.hits.length > 0)
    log(`FAIL: requests meant for outside loopback reached the trap: ${trap.hits.join('; ')}`);
  else log('trap: no request tried to leave loopback');
  const ok = failed === 0 && trap.hits.length === 0;
  console.log(
    `\n${rows.length - failed} passed, ${failed} failed (wall time ${((performance.now() - wall) / 1000).toFixed(1)} s)`,
  );
  if (ok && !keep) rmSync(workRoot, { recursive: true, force: true });
  else log(`kept ${workRoot}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`error: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
