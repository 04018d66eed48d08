/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';
import { LineBatcher } from './line-batcher.js';
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

/** stdout, in batches (see line-batcher.ts). */
export function defaultLogDestination(): LogDestination {
  return new LineBatcher();
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
