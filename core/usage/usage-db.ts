/**
 * The usage database: one SQLite file (better-sqlite3), shared by every worker of a gateway and read
 * by `tapgate usage`. WAL lets readers run beside the writer, and `busy_timeout` lets the workers
 * take turns writing. The schema's version is `user_version`: a newer one (a later tapgate) is refused
 * rather than written with the wrong columns. better-sqlite3 is imported only when usage is on.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';

export type Db = BetterSqlite3.Database;

/** The schema this code writes. */
export const SCHEMA_VERSION = 1;

/**
 * How long one statement waits for another process's write lock. A flush blocks the event loop
 * while it waits, so this is short: a batch commits in milliseconds, and a flush that still finds the
 * file busy keeps its batch for the next interval.
 */
export const WRITE_BUSY_MS = 1000;
/** At boot (creating the schema) and for readers, a longer wait costs no request anything. */
export const BOOT_BUSY_MS = 5000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  key TEXT,
  account TEXT,
  model TEXT,
  route TEXT,
  status INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error_code TEXT,
  attempts INTEGER NOT NULL,
  input INTEGER NOT NULL,
  cached_input INTEGER NOT NULL,
  output INTEGER NOT NULL,
  reasoning INTEGER NOT NULL,
  total INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  ttfb_ms REAL,
  request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
CREATE INDEX IF NOT EXISTS requests_key_at ON requests (key, at);
CREATE INDEX IF NOT EXISTS requests_account_at ON requests (account, at);
CREATE INDEX IF NOT EXISTS requests_model_at ON requests (model, at);
-- Totals per UTC day, key, account and model, kept longer than the records. A group without a
-- key, account or model holds '' there (NULL would never match the upsert's conflict target).
CREATE TABLE IF NOT EXISTS daily (
  day TEXT NOT NULL,
  key TEXT NOT NULL,
  account TEXT NOT NULL,
  model TEXT NOT NULL,
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  input INTEGER NOT NULL,
  cached_input INTEGER NOT NULL,
  output INTEGER NOT NULL,
  reasoning INTEGER NOT NULL,
  total INTEGER NOT NULL,
  PRIMARY KEY (day, key, account, model)
) WITHOUT ROWID;
`;

/** Why the file cannot be used; the message names the file. */
export class UsageDbError extends Error {
  constructor(
    readonly file: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`cannot use ${file} as the usage database: ${reason}`, options);
    this.name = 'UsageDbError';
  }
}

/**
 * Opens the database for writing, creating the folder and the file when missing. A file that is not
 * a database (or of a newer schema) is refused before anything is written to it.
 */
export async function openForWriting(file: string): Promise<Db> {
  const Database = await loadDriver();
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (err) {
    throw new UsageDbError(file, `its folder cannot be created (${reason(err)})`, { cause: err });
  }
  return open(file, () => {
    const db = new Database(file, { timeout: BOOT_BUSY_MS });
    try {
      // Read first: on a file that is not a database this fails, and nothing was written.
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION)
        throw new UsageDbError(
          file,
          `its schema version ${version} is newer than this tapgate's (${SCHEMA_VERSION})`,
        );
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      if (version < SCHEMA_VERSION) {
        db.transaction(() => {
          db.exec(SCHEMA);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      }
      db.pragma(`busy_timeout = ${WRITE_BUSY_MS}`);
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  });
}

/** Opens an existing database read-only (works while a gateway writes it); undefined when there is no file. */
export async function openForReading(file: string): Promise<Db | undefined> {
  if (!existsSync(file)) return undefined;
  const Database = await loadDriver();
  return open(file, () => {
    const db = new Database(file, { readonly: true, fileMustExist: true, timeout: BOOT_BUSY_MS });
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version !== SCHEMA_VERSION)
        throw new UsageDbError(
          file,
          version === 0
            ? 'it holds no usage records (no tapgate schema)'
            : `its schema version ${version} is not this tapgate's (${SCHEMA_VERSION})`,
        );
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  });
}

async function loadDriver(): Promise<typeof BetterSqlite3> {
  return (await import('better-sqlite3')).default;
}

function open(file: string, fn: () => Db): Db {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageDbError) throw err;
    throw new UsageDbError(file, reason(err), { cause: err });
  }
}

function reason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  return e.code !== undefined && !message.includes(e.code) ? `${message} (${e.code})` : message;
}
