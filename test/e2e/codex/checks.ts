/** A scenario, the run it checks, and the readers and checks the scenario lists share. */
import type { GatewayTraffic } from './gateway-watch.js';
import type { RawRun } from './launch.js';
import { BAD_MESSAGES } from './common.js';
import { RUN_TIMEOUT_MS } from './launch.js';

/** One request the scripted upstream saw during a run. */
export interface UpstreamSeen {
  url: string;
  json: Record<string, unknown> | undefined;
  headers: Record<string, string | string[] | undefined>;
  /** When it arrived (ms, performance.now()). */
  at: number;
  /** POSTs Codex had made to the gateway when it arrived: 0 means it came through the WebSocket. */
  postsBefore: number;
  /** Where the upstream learnt the scenario: the forwarded header, or the prompt. */
  scenarioFrom: 'header' | 'prompt' | undefined;
}

export interface CodexRun extends RawRun {
  upstream: UpstreamSeen[];
  /** The x-request-id the upstream received first: the gateway's request id. */
  requestId: string | undefined;
  /** What Codex asked the gateway for (undefined without a gateway). */
  gateway: GatewayTraffic | undefined;
  /** The gateway's access lines (`"msg":"request"` or `"request failed"`), one per request or turn. */
  accessLines: Record<string, unknown>[];
}

export interface Scenario {
  name: string;
  what: string;
  /** `ws`: Codex's provider has `supports_websockets = true`, so Codex opens a WebSocket first. */
  transport: 'http' | 'ws';
  /** The upstream script, when not the one named like the scenario. */
  upstream?: string;
  /** Codex's stream_max_retries (default 0). */
  retries?: number;
  /** How many upstream requests to expect (default 1 + retries). */
  requests?: number;
  /** The gateway's config for this scenario, when not the one-upstream default. */
  gatewayYaml?: (upstreamUrl: string) => string;
  /** Checked before the request count: did the run go the way the scenario needs (the transport)? */
  precheck?(run: CodexRun): string | undefined;
  /** Returns why the run fails the scenario, or undefined. */
  check(run: CodexRun): string | undefined;
}

export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const eventTypes = (run: CodexRun): string => run.events.map((e) => e.type).join(', ') || 'no events';

/** The message of the `turn.failed` event, else of the last `error` event. */
export function failureMessage(run: CodexRun): string | undefined {
  const failed = run.events.findLast((e) => e.type === 'turn.failed');
  if (failed !== undefined) return str((failed.error as Record<string, unknown> | undefined)?.message);
  return str(run.events.findLast((e) => e.type === 'error')?.message);
}

/** The completed items of one type, in order. */
export function items(run: CodexRun, type: string): Record<string, unknown>[] {
  return run.events
    .filter((e) => e.type === 'item.completed')
    .map((e) => e.item as Record<string, unknown> | undefined)
    .filter((i): i is Record<string, unknown> => i?.type === type);
}

export const agentMessages = (run: CodexRun): string[] =>
  items(run, 'agent_message').map((i) => str(i.text) ?? '');

/** A turn that completed with the agent message "Hello!". */
export function completesWithHello(run: CodexRun): string | undefined {
  if (!run.events.some((e) => e.type === 'turn.completed'))
    return `no turn.completed (events: ${eventTypes(run)}; ${failureMessage(run) ?? 'no message'})`;
  if (!agentMessages(run).includes('Hello!')) return `agent messages ${JSON.stringify(agentMessages(run))}`;
  if (run.exitCode !== 0) return `exit code ${run.exitCode}`;
  return undefined;
}

/** A failed turn whose message contains `want` (a string, or a pattern built from the run). */
export function turnFailsWith(run: CodexRun, want: string | ((run: CodexRun) => RegExp)): string | undefined {
  if (!run.events.some((e) => e.type === 'turn.failed')) return `no turn.failed (events: ${eventTypes(run)})`;
  const msg = failureMessage(run);
  if (msg === undefined) return 'turn.failed without a message';
  if (!matches(msg, want, run)) return `${JSON.stringify(msg)} lacks ${describe(want, run)}`;
  if (run.exitCode === 0) return 'exit code 0 after a failed turn';
  return undefined;
}

export function matches(msg: string, want: string | ((run: CodexRun) => RegExp), run: CodexRun): boolean {
  return typeof want === 'string' ? msg.includes(want) : want(run).test(msg);
}

export const describe = (want: string | ((run: CodexRun) => RegExp), run: CodexRun): string =>
  typeof want === 'string' ? JSON.stringify(want) : String(want(run));

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Checks that hold for every scenario. */
export function commonChecks(run: CodexRun, scenario: Scenario): string | undefined {
  if (run.timedOut) return `Codex still running after ${RUN_TIMEOUT_MS} ms: killed`;
  if (run.escapes !== undefined && run.escapes.length > 0)
    return `tried to leave loopback: ${run.escapes.join(', ')}`;
  const bad = BAD_MESSAGES.find((m) => (run.stdout + run.stderr).includes(m));
  if (bad !== undefined) return `printed "${bad}"`;
  const pre = scenario.precheck?.(run);
  if (pre !== undefined) return pre;
  const expected = scenario.requests ?? 1 + (scenario.retries ?? 0);
  if (run.upstream.length !== expected)
    return `the upstream saw ${run.upstream.length} requests, expected ${expected} (${eventTypes(run)}; ${failureMessage(run) ?? 'no message'})`;
  return undefined;
}
