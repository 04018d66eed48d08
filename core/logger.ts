/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';
import { AccessLog, type LineSink } from './access-log.js';
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

export interface Loggers {
  /** For everything: secret-bearing fields are censored even if a plugin logs a whole object. */
  logger: Logger;
  /** The core's one line per request (see core/access-log.ts). */
  access: AccessLog;
}

export function createLoggers(level: string, destination?: DestinationStream, secrets?: Secrets): Loggers {
  const dest: DestinationStream & LineSink = destination ?? new LineBatcher();
  // The last line of defence: a secret in any value (an upstream's error message, a client-chosen
  // model name) is masked in the written line, whatever field it came in.
  const hooks = {
    streamWrite: (line: string) => clampLine(secrets === undefined ? line : secrets.scrub(line)),
  };
  return {
    logger: pino(
      {
        level,
        base: { name: 'tapgate' },
        timestamp: pino.stdTimeFunctions.isoTime,
        hooks,
        redact: { paths: REDACT, censor: '[redacted]' },
      },
      dest,
    ),
    access: new AccessLog(level, dest, secrets),
  };
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
