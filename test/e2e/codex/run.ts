/**
 * Opt-in end-to-end check: the real Codex CLI (`@openai/codex` 0.169.0, a native binary) against the
 * gateway, one `codex exec --json` run per scenario, over HTTP and over the WebSocket. Codex must
 * print the upstream's real reason, never "stream closed before response.completed" nor "websocket
 * closed by server before response.completed".
 *
 *   npm run e2e:codex                        every scenario
 *   npm run e2e:codex -- --ws                only the WebSocket ones (--http: only the HTTP ones)
 *   npm run e2e:codex -- stall ws-session    only these
 *   npm run e2e:codex -- --no-gateway        baseline: Codex straight at the scripted upstream
 *
 * Not part of `npm test`: it installs a ~400 MB binary on first use. See README.md beside this file,
 * which also explains the network-safety layers (isolation.ts, codex-config.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import {
  agentMessages,
  commonChecks,
  failureMessage,
  str,
  type CodexRun,
  type Scenario,
  type UpstreamSeen,
} from './checks.js';
import { codexConfig } from './codex-config.js';
import { log, SCENARIO_HEADER } from './common.js';
import { oneUpstream } from './gateway-configs.js';
import { watchGateway, type GatewayTraffic } from './gateway-watch.js';
import { ensureCodex, findCodex } from './install.js';
import { inNetns, isolateNetwork, startTrap, straceAvailable, type Trap } from './isolation.js';
import { runCodex, type RawRun } from './launch.js';
import { HTTP_SCENARIOS } from './scenarios.js';
import { promptFor, scenarioOf, UPSTREAM } from './upstream-scripts.js';
import { fallbackMessage, WS_SCENARIOS } from './ws-scenarios.js';

const SCENARIOS: Scenario[] = [...HTTP_SCENARIOS, ...WS_SCENARIOS];

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

/** Which scenarios to run, from the command line; undefined for an unknown name. */
function selectScenarios(argv: string[], direct: boolean): Scenario[] | undefined {
  const only = argv.filter((a) => !a.startsWith('-'));
  const unknown = only.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    log(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return undefined;
  }
  if (only.length > 0) return SCENARIOS.filter((s) => only.includes(s.name));
  const transport = argv.includes('--ws') ? 'ws' : argv.includes('--http') ? 'http' : undefined;
  return SCENARIOS.filter(
    (s) =>
      (transport === undefined || s.transport === transport) &&
      // The scripted upstream speaks no WebSocket: the baseline is an HTTP one.
      !(direct && s.transport === 'ws'),
  );
}

/** The scenario being run, for the upstream's handler. */
interface Current {
  start: number;
  traffic: GatewayTraffic | undefined;
}

async function runScenario(
  scenario: Scenario,
  env: { bin: string; upstream: TestUpstream; seen: UpstreamSeen[]; current: Current },
  trap: Trap,
  workRoot: string,
  direct: boolean,
  strace: boolean,
): Promise<{ run: CodexRun; gateway: TestGateway | undefined }> {
  const { upstream, seen, current } = env;
  // A fresh gateway per scenario, so that no cooldown from one scenario reaches the next.
  const gateway = direct
    ? undefined
    : await startGateway((scenario.gatewayYaml ?? oneUpstream)(upstream.url));
  const traffic = gateway === undefined ? undefined : watchGateway(gateway.gw.server);
  current.start = seen.length;
  current.traffic = traffic;
  const baseUrl = `${gateway?.url ?? upstream.url}/v1`;
  const script = scenario.upstream ?? scenario.name;
  const dir = path.join(workRoot, scenario.name);
  mkdirSync(dir, { recursive: true });
  let raw: RawRun;
  try {
    log(`${scenario.name}: codex exec (${scenario.transport}) → ${baseUrl}`);
    raw = await runCodex({
      bin: env.bin,
      dir,
      config: codexConfig({
        baseUrl,
        trapUrl: trap.url,
        retries: scenario.retries ?? 0,
        websockets: scenario.transport === 'ws',
      }),
      scenario: script,
      prompt: promptFor(script),
      trap,
      strace,
    });
  } finally {
    await gateway?.close();
  }
  const mine = seen.slice(current.start);
  const run: CodexRun = {
    ...raw,
    upstream: mine,
    requestId: gateway ? str(mine[0]?.headers['x-request-id']) : undefined,
    gateway: traffic,
    // Read once the gateway has closed: every turn's access line is written by then.
    accessLines: gateway?.logs.filter((l) => l.msg === 'request' || l.msg === 'request failed') ?? [],
  };
  return { run, gateway };
}

async function main(): Promise<number> {
  const wall = performance.now();
  const argv = process.argv.slice(2);
  const direct = argv.includes('--no-gateway');
  const selected = selectScenarios(argv, direct);
  if (selected === undefined) return 2;
  if (!inNetns()) ensureCodex();
  isolateNetwork(fileURLToPath(import.meta.url));
  const bin = findCodex();
  if (bin === undefined) throw new Error('no Codex binary in the cache');
  const strace = straceAvailable();
  log(
    strace
      ? 'network: strace audits every connect/sendto of Codex and its children'
      : 'network: strace audit off (TAPGATE_CODEX_STRACE=0 or no working strace)',
  );

  const workRoot = mkdtempSync(path.join(os.tmpdir(), 'tapgate-e2e-codex-'));
  const trap = await startTrap();
  const seen: UpstreamSeen[] = [];
  const current: Current = { start: 0, traffic: undefined };
  // The scripted upstream: its behaviour per request comes from the scenario (header or prompt).
  const upstream = await startUpstream((req, res, recorded) => {
    const scenario = scenarioOf(recorded);
    seen.push({
      url: recorded.url,
      json: recorded.json,
      headers: recorded.headers,
      at: performance.now(),
      postsBefore: current.traffic?.posts.length ?? 0,
      scenarioFrom: scenario?.from,
    });
    const script = scenario === undefined ? undefined : UPSTREAM[scenario.name];
    if (script !== undefined) return script(res, { n: seen.length - current.start, recorded });
    res.writeHead(400, { 'content-type': 'application/json' });
    const message = `e2e upstream: no scenario in ${SCENARIO_HEADER} or the prompt (${req.method} ${req.url})`;
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }));
  });
  log(`upstream ${upstream.url}, trap ${trap.url}, work dir ${workRoot}`);
  if (direct)
    log('--no-gateway: Codex talks straight to the scripted upstream (a baseline: failures expected)');

  const rows: Row[] = [];
  const keep = process.env.TAPGATE_CODEX_KEEP === '1';
  try {
    for (const scenario of selected) {
      const { run, gateway } = await runScenario(
        scenario,
        { bin, upstream, seen, current },
        trap,
        workRoot,
        direct,
        strace,
      );
      const reason = commonChecks(run, scenario) ?? scenario.check(run);
      const said =
        reason ??
        [fallbackMessage(run), failureMessage(run) ?? agentMessages(run).join(' | ')]
          .filter(Boolean)
          .join(' → ');
      rows.push({
        result: reason === undefined ? 'PASS' : 'FAIL',
        scenario: scenario.name,
        time: `${(run.ms / 1000).toFixed(1)}s`,
        what: scenario.what,
        said,
      });
      const file = path.join(workRoot, scenario.name, 'run.txt');
      const traffic = run.gateway
        ? `upgrades ${JSON.stringify(run.gateway.upgrades)}, POSTs ${JSON.stringify(run.gateway.posts)}`
        : '(no gateway)';
      const upstreamLines = run.upstream
        .map(
          (r, i) =>
            `${i + 1}. ${r.url} (${r.postsBefore === 0 ? 'before any POST' : 'after a POST'}; scenario from the ${r.scenarioFrom ?? '?'})`,
        )
        .join('\n');
      writeFileSync(
        file,
        `exit=${run.exitCode} signal=${run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}\n` +
          `--- gateway traffic\n${traffic}\n--- upstream requests\n${upstreamLines}\n` +
          `--- gateway log\n${gateway?.rawLogs() ?? '(no gateway)'}\n`,
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
