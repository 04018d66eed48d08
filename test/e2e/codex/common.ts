/** What every part of the Codex e2e shares: names, the log line, the messages that must never appear. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MODEL = 'gpt-5.5';
/** The variable Codex reads the client key from (`env_key`). */
export const KEY_ENV = 'TAPGATE_E2E_KEY';
/** The variable Codex turns into the scenario header (`env_http_headers`). */
export const SCENARIO_ENV = 'TAPGATE_E2E_SCENARIO';
/** The header the scripted upstream picks its behaviour from; the gateway forwards it. */
export const SCENARIO_HEADER = 'x-tapgate-e2e-scenario';
/** Codex's idle timeout, far above the gateway's, so that what Codex reports is the gateway's verdict. */
export const CODEX_IDLE_MS = 20_000;
/** The gateway's upstream idle timeout: the stall scenario waits this long. */
export const GATEWAY_IDLE = '1500ms';

/** What Codex prints when a stream ends without a terminal event: the reason got lost. */
export const BAD_MESSAGES = [
  'stream closed before response.completed',
  'websocket closed by server before response.completed',
];

export const log = (msg: string): void => {
  process.stderr.write(`[e2e:codex] ${msg}\n`);
};
