/** pino, with every secret-bearing field censored even if a plugin logs a whole object by mistake. */
import { pino, type Logger, type DestinationStream } from 'pino';
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
  /**
   * The core's one line per request. Its fields are chosen by the core, so it skips pino's
   * path-based redaction; the written line is still scrubbed for secret values.
   */
  access: Logger;
}

/** How often buffered log lines are written out at the latest: `tail -f` stays live. */
const FLUSH_EVERY_MS = 250;

export function createLoggers(level: string, destination?: DestinationStream, secrets?: Secrets): Loggers {
  // Lines are written in batches of 4 KB (not one syscall per line), flushed at least every 250 ms.
  let dest = destination;
  if (dest === undefined) {
    const stdout = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    setInterval(() => stdout.flush(), FLUSH_EVERY_MS).unref();
    dest = stdout;
  }
  // The last line of defence: a secret in any value (an upstream's error message, a client-chosen
  // model name) is masked in the written line, whatever field it came in.
  const hooks = secrets === undefined ? {} : { streamWrite: (line: string) => secrets.scrub(line) };
  const base = { level, base: { name: 'tapgate' }, timestamp: pino.stdTimeFunctions.isoTime, hooks };
  return {
    logger: pino({ ...base, redact: { paths: REDACT, censor: '[redacted]' } }, dest),
    access: pino(base, dest),
  };
}
