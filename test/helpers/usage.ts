/** Usage-record helpers: a temp folder for a test's database, and the records a database holds. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { UsageRecord } from '../../core/usage/usage-types.js';

/** A temp folder per suite, removed after it; `file(name)` is a database path inside it. */
export function usageTempDir(prefix: string): { dir: () => string; file: (name?: string) => string } {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), `tapgate-${prefix}-`))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  return { dir: () => dir, file: (name = `usage-${++n}.db`) => join(dir, name) };
}

interface Row {
  at: number;
  key: string | null;
  account: string | null;
  model: string | null;
  route: string | null;
  status: number;
  outcome: UsageRecord['outcome'];
  error_code: string | null;
  attempts: number;
  input: number;
  cached_input: number;
  output: number;
  reasoning: number;
  total: number;
  duration_ms: number;
  ttfb_ms: number | null;
  request_id: string;
}

/** Every record in the file, in write order, read the way `tapgate usage` reads (read-only). */
export function readRecords(file: string): UsageRecord[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT * FROM requests ORDER BY id').all() as Row[]).map((r) => ({
      at: r.at,
      key: r.key,
      account: r.account,
      model: r.model,
      route: r.route,
      status: r.status,
      outcome: r.outcome,
      errorCode: r.error_code,
      attempts: r.attempts,
      input: r.input,
      cachedInput: r.cached_input,
      output: r.output,
      reasoning: r.reasoning,
      total: r.total,
      durationMs: r.duration_ms,
      ttfbMs: r.ttfb_ms,
      requestId: r.request_id,
    }));
  } finally {
    db.close();
  }
}

/** How many records the file holds (0 while it does not exist yet). */
export function countRecords(file: string): number {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM requests').get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

/** A record with plausible values, `over` replacing some. */
export function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at: Date.UTC(2026, 0, 1, 12),
    key: 'alice',
    account: 'acct-a',
    model: 'gpt-test',
    route: 'responses',
    status: 200,
    outcome: 'ok',
    errorCode: null,
    attempts: 1,
    input: 100,
    cachedInput: 10,
    output: 20,
    reasoning: 5,
    total: 120,
    durationMs: 12.5,
    ttfbMs: 3.1,
    requestId: `req-${Math.random().toString(36).slice(2)}`,
    ...over,
  };
}
