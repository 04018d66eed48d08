/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';

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
  /**
   * The core's one line per request, built only from names, ids and codes it chooses itself, so it
   * skips the redaction pass that would otherwise run on every request.
   */
  access: Logger;
}

export function createLoggers(level: string, destination?: DestinationStream): Loggers {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  const base = { level, base: { name: 'tapgate' }, timestamp: pino.stdTimeFunctions.isoTime };
  return {
    logger: pino({ ...base, redact: { paths: REDACT, censor: '[redacted]' } }, dest),
    access: pino(base, dest),
  };
}
