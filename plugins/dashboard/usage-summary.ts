/**
 * Usage per client key and per account, today and this month (UTC), for the dashboard's usage panel.
 * Read from the gateway's usage records (every worker's), at most once per `cacheMs` however many
 * viewers ask: the page polls, and the store is the source of truth rather than this process's memory.
 */
import type { UsageReader, UsageRow } from '../../core/index.js';

export interface UsageTotals {
  requests: number;
  errors: number;
  input: number;
  output: number;
  total: number;
}

/** One key or account: today's and this month's totals. */
export interface UsageLine {
  name: string | null;
  /** The line that sums the names past the table's length. */
  others?: true;
  today: UsageTotals;
  month: UsageTotals;
}

export interface UsageSummaryMessage {
  /** False when the gateway keeps no usage records (`usage.enabled: false`). */
  available: boolean;
  /** Start of today and of this month (UTC, ms). */
  dayStart: number;
  monthStart: number;
  keys: UsageLine[];
  accounts: UsageLine[];
}

/** Lines shown per table: the rest are summed into one "others" line. */
const MAX_LINES = 50;

export class UsageSummary {
  private cached: { at: number; value: Promise<UsageSummaryMessage> } | undefined;

  constructor(
    private readonly reader: UsageReader | undefined,
    private readonly cacheMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<UsageSummaryMessage> {
    const now = this.now();
    const c = this.cached;
    if (c !== undefined && now - c.at < this.cacheMs) return c.value;
    const value = this.read(now);
    this.cached = { at: now, value };
    // A failed read is not cached: the next poll tries again.
    value.catch(() => {
      if (this.cached?.value === value) this.cached = undefined;
    });
    return value;
  }

  private async read(now: number): Promise<UsageSummaryMessage> {
    const d = new Date(now);
    const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const reader = this.reader;
    if (reader === undefined) return { available: false, dayStart, monthStart, keys: [], accounts: [] };
    const by = ['key', 'account'] as const;
    const [today, month] = await Promise.all([
      reader.query({ since: dayStart, until: now + 1, by }),
      reader.query({ since: monthStart, until: now + 1, by }),
    ]);
    return {
      available: true,
      dayStart,
      monthStart,
      keys: lines(today, month, (r) => r.key ?? null),
      accounts: lines(today, month, (r) => r.account ?? null),
    };
  }
}

function zero(): UsageTotals {
  return { requests: 0, errors: 0, input: 0, output: 0, total: 0 };
}

function add(t: UsageTotals, r: UsageTotals): void {
  t.requests += r.requests;
  t.errors += r.errors;
  t.input += r.input;
  t.output += r.output;
  t.total += r.total;
}

/** Folds (key × account) rows into one line per name, biggest this month first. */
function lines(today: UsageRow[], month: UsageRow[], name: (r: UsageRow) => string | null): UsageLine[] {
  const byName = new Map<string | null, UsageLine>();
  const line = (n: string | null) => {
    let l = byName.get(n);
    if (l === undefined) byName.set(n, (l = { name: n, today: zero(), month: zero() }));
    return l;
  };
  for (const r of today) add(line(name(r)).today, r);
  for (const r of month) add(line(name(r)).month, r);
  const all = [...byName.values()].sort(
    (a, b) => b.month.total - a.month.total || b.month.requests - a.month.requests,
  );
  if (all.length <= MAX_LINES) return all;
  const others: UsageLine = {
    name: `${all.length - MAX_LINES + 1} others`,
    others: true,
    today: zero(),
    month: zero(),
  };
  for (const l of all.slice(MAX_LINES - 1)) {
    add(others.today, l.today);
    add(others.month, l.month);
  }
  return [...all.slice(0, MAX_LINES - 1), others];
}
