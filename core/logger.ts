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

/** How often buffered log lines are written out at the latest: `tail -f` stays live. */
const FLUSH_EVERY_MS = 250;

export function createLoggers(level: string, destination?: DestinationStream): Loggers {
  // Lines are written in batches of 4 KB (not one syscall per line), flushed at least every 250 ms.
  let dest = destination;
  if (dest === undefined) {
    const stdout = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    setInterval(() => stdout.flush(), FLUSH_EVERY_MS).unref();
    dest = stdout;
  }
  const base = { level, base: { name: 'tapgate' }, timestamp: pino.stdTimeFunctions.isoTime };
  return {
    logger: pino({ ...base, redact: { paths: REDACT, censor: '[redacted]' } }, dest),
    access: pino(base, dest),
  };
}
