/**
 * Totals per key, account, model and day over a period. Whole UTC days come from the `daily` rollup
 * (a month or a year is a few hundred rows, and a day past the records' retention still has its
 * totals); the part of the period that is not a whole day comes from the records themselves. The
 * day still running counts as whole when the period reaches now: its rollup is as current as its
 * records, since both are written in one transaction.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './usage-db.js';
import type { UsageGroup, UsageQuery, UsageReader, UsageRow } from './usage-types.js';
import { utcDay } from './usage-writer.js';

const DAY_MS = 86_400_000;
const GROUPS: readonly UsageGroup[] = ['key', 'account', 'model', 'day'];
const SUMS = ['requests', 'errors', 'input', 'cached_input', 'output', 'reasoning', 'total'] as const;

interface RawRow {
  key?: string;
  account?: string;
  model?: string;
  day?: string;
  requests: number;
  errors: number;
  input: number;
  cached_input: number;
  output: number;
  reasoning: number;
  total: number;
}

export class SqliteUsageReader implements UsageReader {
  private readonly statements = new Map<string, Statement>();

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  query(q: UsageQuery): Promise<UsageRow[]> {
    try {
      return Promise.resolve(this.querySync(q));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  querySync(q: UsageQuery): UsageRow[] {
    const by = GROUPS.filter((g) => q.by.includes(g));
    const unknown = q.by.filter((g) => !GROUPS.includes(g));
    if (unknown.length > 0) throw new TypeError(`unknown usage group ${String(unknown[0])}`);
    const now = this.now();
    const since = q.since;
    const until = q.until ?? now;
    if (!Number.isFinite(since) || !Number.isFinite(until))
      throw new TypeError('since and until must be times');
    // Whole days within [since, until); the running day is whole when the period reaches now.
    const fullStart = Math.ceil(since / DAY_MS) * DAY_MS;
    let fullEnd = (until >= now ? Math.ceil(until / DAY_MS) : Math.floor(until / DAY_MS)) * DAY_MS;
    if (fullEnd < fullStart) fullEnd = fullStart;
    const days = fullEnd > fullStart;
    const params = days
      ? [utcDay(fullStart), utcDay(fullEnd), since, fullStart, fullEnd, until]
      : ['', '', since, until, 0, 0];
    const rows = this.statement(by).all(...params) as RawRow[];
    return rows.map((r) => toRow(r, by));
  }

  private statement(by: readonly UsageGroup[]): Statement {
    const id = by.join(',');
    let st = this.statements.get(id);
    if (st === undefined) this.statements.set(id, (st = this.db.prepare(sql(by))));
    return st;
  }
}

function sql(by: readonly UsageGroup[]): string {
  const groups = by.map((g) => `${g}`);
  const dailyCols = [...by, ...SUMS].join(', ');
  const recordCols = [
    ...by.map((g) =>
      g === 'day' ? `strftime('%Y-%m-%d', at / 1000, 'unixepoch') AS day` : `COALESCE(${g}, '') AS ${g}`,
    ),
    `1 AS requests`,
    `outcome <> 'ok' AS errors`,
    'input',
    'cached_input',
    'output',
    'reasoning',
    'total',
  ].join(', ');
  const sums = SUMS.map((s) => `COALESCE(SUM(${s}), 0) AS ${s}`).join(', ');
  const order = by.includes('day')
    ? ['day', 'total DESC', ...groups.filter((g) => g !== 'day')]
    : ['total DESC', ...groups];
  return `SELECT ${[...groups, sums].join(', ')} FROM (
      SELECT ${dailyCols} FROM daily WHERE day >= ? AND day < ?
      UNION ALL SELECT ${recordCols} FROM requests WHERE at >= ? AND at < ?
      UNION ALL SELECT ${recordCols} FROM requests WHERE at >= ? AND at < ?
    )${groups.length > 0 ? ` GROUP BY ${groups.join(', ')}` : ''} ORDER BY ${order.join(', ')}`;
}

function toRow(r: RawRow, by: readonly UsageGroup[]): UsageRow {
  const row: UsageRow = {
    requests: r.requests,
    errors: r.errors,
    input: r.input,
    cachedInput: r.cached_input,
    output: r.output,
    reasoning: r.reasoning,
    total: r.total,
  };
  // '' is the rollup's "none"; names are never empty.
  if (by.includes('key')) row.key = r.key === '' ? null : r.key!;
  if (by.includes('account')) row.account = r.account === '' ? null : r.account!;
  if (by.includes('model')) row.model = r.model === '' ? null : r.model!;
  if (by.includes('day')) row.day = r.day!;
  return ordered(row, by);
}

/** Group fields first, as the caller reads them. */
function ordered(row: UsageRow, by: readonly UsageGroup[]): UsageRow {
  const out: Record<string, unknown> = {};
  for (const g of by) out[g] = row[g];
  return Object.assign(out, row) as UsageRow;
}
