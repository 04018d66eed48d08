/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';
import { LineBatcher } from './line-batcher.js';
import { PrettyLines } from './pretty-lines.js';
import type { Secrets } from './secrets.js';
import { truncate } from './truncate.js';

export type { Logger };

const REDACT = [
  'authorization',
  'apiKey',
  'key',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  '*.authorization',
  '*.apiKey',
  '*.key',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
];

/** Where log lines go: pino's destination, which also takes the core's hand-built access lines. */
export type LogDestination = DestinationStream & { write(line: string): unknown };

/** `log.format`: `json` always, `pretty` always, `auto` pretty only for a person at a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * Whether stdout gets readable lines, and in color. `auto` means a terminal, outside CI (CI pages
 * that look like a terminal still want JSON to grep). Color follows the NO_COLOR and FORCE_COLOR=0
 * conventions, and never goes to a pipe or file.
 */
export function stdoutLogStyle(
  format: LogFormat,
  isTTY: boolean = process.stdout.isTTY === true,
  env: NodeJS.ProcessEnv = process.env,
): { pretty: boolean; color: boolean } {
  const pretty = format === 'pretty' || (format === 'auto' && isTTY && !env.CI);
  const color = pretty && isTTY && !env.NO_COLOR && env.FORCE_COLOR !== '0';
  return { pretty, color };
}

/** stdout, in batches (see line-batcher.ts), as JSON lines or, by `format`, readable ones. */
export function defaultLogDestination(format: LogFormat = 'json'): LogDestination {
  const { pretty, color } = stdoutLogStyle(format);
  return pretty ? new PrettyLines(new LineBatcher(), color) : new LineBatcher();
}

/** The logger for everything but the access line (core/observe/access-log.ts, which shares `destination`). */
export function createLogger(
  level: string,
  destination: LogDestination = defaultLogDestination(),
  secrets?: Secrets,
): Logger {
  // The last line of defence: a secret in any value (an upstream's error message, a client-chosen
  // model name) is masked in the written line, whatever field it came in.
  const hooks = {
    streamWrite: (line: string) => clampLine(secrets === undefined ? line : secrets.scrub(line)),
  };
  return pino(
    {
      level,
      base: { name: 'tapgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks,
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    destination,
  );
}

/** A log line longer than this has its long string values cut (a client-chosen field logged whole). */
export const MAX_LINE_CHARS = 16 * 1024;
const MAX_VALUE_CHARS = 2048;

/** The line, or, when it is too long, the same JSON with every long string cut. Rare: only long lines pay. */
export function clampLine(line: string): string {
  if (line.length <= MAX_LINE_CHARS) return line;
  try {
    const clamped = JSON.stringify(JSON.parse(line), (_key, value: unknown) =>
      typeof value === 'string' ? truncate(value, MAX_VALUE_CHARS) : value,
    );
    return clamped + '\n';
  } catch {
    return truncate(line, MAX_LINE_CHARS) + '\n';
  }
}
