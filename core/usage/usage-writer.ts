/**
 * Writes batches of usage records: the records and the daily totals they add to, in one IMMEDIATE
 * transaction (the write lock is taken at BEGIN, so two workers never deadlock upgrading a read
 * lock), and deletes what is past retention in bounded chunks.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './usage-db.js';
import type { UsageRecord } from './usage-types.js';

/** Rows deleted per statement when pruning: each chunk holds the write lock only briefly. */
export const PRUNE_CHUNK = 5000;

export class UsageWriter {
  private readonly insertRecord: Statement;
  private readonly upsertDaily: Statement;
  private readonly pruneRecords: Statement;
  private readonly pruneDaily: Statement;
  private readonly write: (records: readonly UsageRecord[]) => void;

  constructor(db: Db) {
    this.insertRecord = db.prepare(
      `INSERT INTO requests (at, key, account, model, route, status, outcome, error_code, attempts,
         input, cached_input, output, reasoning, total, duration_ms, ttfb_ms, request_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.upsertDaily = db.prepare(
      `INSERT INTO daily (day, key, account, model, requests, errors, input, cached_input, output, reasoning, total)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (day, key, account, model) DO UPDATE SET
         requests = requests + excluded.requests, errors = errors + excluded.errors,
         input = input + excluded.input, cached_input = cached_input + excluded.cached_input,
         output = output + excluded.output, reasoning = reasoning + excluded.reasoning,
         total = total + excluded.total`,
    );
    this.pruneRecords = db.prepare(
      `DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE at < ? ORDER BY at LIMIT ${PRUNE_CHUNK})`,
    );
    this.pruneDaily = db.prepare(
      `DELETE FROM daily WHERE (day, key, account, model) IN
         (SELECT day, key, account, model FROM daily WHERE day < ? LIMIT ${PRUNE_CHUNK})`,
    );
    const tx = db.transaction((records: readonly UsageRecord[]) => {
      for (const r of records) this.insertRecord.run(...recordRow(r));
      for (const row of dailySums(records)) this.upsertDaily.run(...row);
    });
    this.write = (records) => tx.immediate(records);
  }

  /** Writes the batch, all of it or (on a throw) none of it. */
  insert(records: readonly UsageRecord[]): void {
    if (records.length > 0) this.write(records);
  }

  /** Deletes up to one chunk of records older than `before` (ms); returns how many went. */
  pruneRecordsBefore(before: number): number {
    return this.pruneRecords.run(before).changes;
  }

  /** Deletes up to one chunk of daily totals of days before `day` (`YYYY-MM-DD`). */
  pruneDailyBefore(day: string): number {
    return this.pruneDaily.run(day).changes;
  }
}

function recordRow(r: UsageRecord): unknown[] {
  return [
    r.at,
    r.key,
    r.account,
    r.model,
    r.route,
    r.status,
    r.outcome,
    r.errorCode,
    r.attempts,
    r.input,
    r.cachedInput,
    r.output,
    r.reasoning,
    r.total,
    r.durationMs,
    r.ttfbMs,
    r.requestId,
  ];
}

/** The batch summed per UTC day, key, account and model: one upsert per group, not per record. */
function dailySums(records: readonly UsageRecord[]): unknown[][] {
  const groups = new Map<string, unknown[]>();
  const days = new DayCache();
  for (const r of records) {
    const day = days.of(r.at);
    const key = r.key ?? '';
    const account = r.account ?? '';
    const model = r.model ?? '';
    // NUL cannot appear in a key or account name; a model name that held one would only share a group.
    const id = `${day}\0${key}\0${account}\0${model}`;
    let g = groups.get(id);
    if (g === undefined) groups.set(id, (g = [day, key, account, model, 0, 0, 0, 0, 0, 0, 0]));
    (g[4] as number)++;
    if (r.outcome !== 'ok') (g[5] as number)++;
    (g[6] as number) += r.input;
    (g[7] as number) += r.cachedInput;
    (g[8] as number) += r.output;
    (g[9] as number) += r.reasoning;
    (g[10] as number) += r.total;
  }
  return [...groups.values()];
}

const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` (UTC) of a time; a batch is almost always one day, so the last answer is kept. */
export class DayCache {
  private start = 0;
  private end = -1;
  private day = '';
  of(at: number): string {
    if (at >= this.start && at < this.end) return this.day;
    this.start = Math.floor(at / DAY_MS) * DAY_MS;
    this.end = this.start + DAY_MS;
    this.day = utcDay(this.start);
    return this.day;
  }
}

export function utcDay(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}
