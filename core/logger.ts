/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';
import { AccessLog, type LineSink } from './access-log.js';
import { LineBatcher } from './line-batcher.js';
import type { Secrets } from './secrets.js';

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
  const hooks = secrets === undefined ? {} : { streamWrite: (line: string) => secrets.scrub(line) };
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
