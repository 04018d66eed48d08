/**
 * Issue 14: the usage database itself. Queries by key, account, model and day over any period agree
 * with the records summed by hand (whole days read from the rollup, the edges from the records);
 * retention deletes old records and keeps their daily totals; a flush that finds the file locked
 * keeps its batch (bounded) and writes it once the lock is gone.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { createLogger } from '../../core/observe/logger.js';
import { openForWriting } from '../../core/usage/usage-db.js';
import { SqliteUsageReader } from '../../core/usage/usage-reader.js';
import { UsageRecorder } from '../../core/usage/usage-recorder.js';
import { MIN_ROLLUP_RETENTION_MS, UsageRetention } from '../../core/usage/usage-retention.js';
import type { UsageGroup, UsageRecord, UsageRow } from '../../core/usage/usage-types.js';
import { UsageWriter, utcDay } from '../../core/usage/usage-writer.js';
import { LogCapture } from '../helpers/gateway.js';
import { countRecords, record, usageTempDir } from '../helpers/usage.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 2, 15, 13, 30);

/** A small deterministic generator (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the reader must answer, summed from the records themselves. */
function expected(
  records: readonly UsageRecord[],
  since: number,
  until: number,
  by: UsageGroup[],
): UsageRow[] {
  const groups = new Map<string, UsageRow>();
  for (const r of records) {
    if (r.at < since || r.at >= until) continue;
    const row: UsageRow = {
      requests: 0,
      errors: 0,
      input: 0,
      cachedInput: 0,
      output: 0,
      reasoning: 0,
      total: 0,
    };
    if (by.includes('key')) row.key = r.key;
    if (by.includes('account')) row.account = r.account;
    if (by.includes('model')) row.model = r.model;
    if (by.includes('day')) row.day = utcDay(r.at);
    const id = JSON.stringify([row.key, row.account, row.model, row.day]);
    const g = groups.get(id) ?? (groups.set(id, row), row);
    g.requests++;
    if (r.outcome !== 'ok') g.errors++;
    g.input += r.input;
    g.cachedInput += r.cachedInput;
    g.output += r.output;
    g.reasoning += r.reasoning;
    g.total += r.total;
  }
  return [...groups.values()];
}

const sortKey = (r: UsageRow) => JSON.stringify([r.key, r.account, r.model, r.day]);
const sorted = (rows: UsageRow[]) => [...rows].sort((a, b) => sortKey(a).localeCompare(sortKey(b)));

describe('usage: the store', function () {
  this.timeout(30_000);
  const tmp = usageTempDir('usage-store');

  it('answers by key, account, model and day over any period exactly as the records sum', async () => {
    const db = await openForWriting(tmp.file());
    const writer = new UsageWriter(db);
    const reader = new SqliteUsageReader(db, () => NOW);
    const rand = rng(14);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const records: UsageRecord[] = [];
    for (let i = 0; i < 3000; i++) {
      const input = Math.floor(rand() * 5000);
      const output = Math.floor(rand() * 800);
      records.push(
        record({
          at: NOW - Math.floor(rand() * 12 * DAY),
          key: pick(['alice', 'bob', 'ci', null]),
          account: pick(['acct-a', 'acct-b', null]),
          model: pick(['gpt-5', 'gpt-5-mini', 'o3']),
          outcome: pick(['ok', 'ok', 'ok', 'error', 'client_abort'] as const),
          input,
          cachedInput: Math.floor(input / 3),
          output,
          reasoning: Math.floor(output / 4),
          total: input + output,
        }),
      );
    }
    // In batches of various sizes, as flushes would write them.
    for (let i = 0; i < records.length;) {
      const n = 1 + Math.floor(rand() * 400);
      writer.insert(records.slice(i, i + n));
      i += n;
    }

    const periods: [number, number | undefined][] = [
      [NOW - 30 * DAY, undefined], // everything, until now (the running day from the rollup)
      [NOW - 7 * DAY, undefined], // a partial first day
      [Date.UTC(2026, 2, 10), Date.UTC(2026, 2, 12)], // whole days only
      [NOW - 5.3 * DAY, NOW - 1.7 * DAY], // partial both ends, in the past
      [NOW - 3 * 3_600_000, NOW - 3_600_000], // within one day
      [NOW + DAY, NOW + 2 * DAY], // nothing
    ];
    const bys: UsageGroup[][] = [
      ['key'],
      ['account'],
      ['model'],
      ['day'],
      ['key', 'model'],
      ['account', 'day'],
      [],
    ];
    for (const [since, until] of periods)
      for (const by of bys) {
        const rows = await reader.query({ since, until, by });
        const want = expected(records, since, until ?? NOW, by);
        const what = `since ${new Date(since).toISOString()} by [${by.join(',')}]`;
        if (by.length === 0) {
          assert.equal(rows.length, 1, what);
          const total = want[0] ?? {
            requests: 0,
            errors: 0,
            input: 0,
            cachedInput: 0,
            output: 0,
            reasoning: 0,
            total: 0,
          };
          assert.deepEqual(rows[0], total, what);
          continue;
        }
        assert.deepEqual(sorted(rows), sorted(want), what);
        // Sorted by total, highest first; day rows by day.
        for (let i = 1; i < rows.length; i++) {
          const [p, r] = [rows[i - 1]!, rows[i]!];
          if (by.includes('day')) assert.ok(p.day! < r.day! || (p.day === r.day && p.total >= r.total), what);
          else assert.ok(p.total >= r.total, what);
        }
      }
    db.close();
  });

  it('retention deletes old records and keeps their daily totals (those past 400 days go too)', async () => {
    const file = tmp.file();
    const db = await openForWriting(file);
    const writer = new UsageWriter(db);
    const old = Date.UTC(2026, 0, 10, 8);
    const ancient = NOW - MIN_ROLLUP_RETENTION_MS - 2 * DAY;
    const recent = NOW - DAY;
    const oldRecords = Array.from({ length: 12_000 }, () =>
      record({ at: old, total: 3, input: 2, output: 1 }),
    );
    writer.insert(oldRecords);
    writer.insert([record({ at: ancient, total: 7 }), record({ at: recent, total: 5 })]);

    const lines = new LogCapture();
    const retention = new UsageRetention(writer, 30 * DAY, createLogger('info', lines as never), () => NOW);
    await retention.run();
    retention.stop();
    assert.equal(countRecords(file), 1, 'only the recent record is left');
    const reader = new SqliteUsageReader(db, () => NOW);
    const january = await reader.query({
      since: Date.UTC(2026, 0, 1),
      until: Date.UTC(2026, 1, 1),
      by: ['day'],
    });
    assert.deepEqual(january, [
      {
        day: '2026-01-10',
        requests: 12_000,
        errors: 0,
        input: 24_000,
        cachedInput: 120_000,
        output: 12_000,
        reasoning: 60_000,
        total: 36_000,
      },
    ]);
    const ancientRows = await reader.query({ since: ancient - DAY, until: ancient + DAY, by: [] });
    assert.equal(ancientRows[0]!.requests, 0, 'the rollup of a day past 400 days is gone');
    assert.deepEqual(lines.lines, [], 'nothing failed');
    db.close();
  });

  it('a flush that finds the file locked keeps its batch, and writes it once the lock is gone', async () => {
    const file = tmp.file();
    const db = await openForWriting(file);
    const lines = new LogCapture();
    const logger = createLogger('info', lines as never);
    const recorder = new UsageRecorder(new UsageWriter(db), {
      flushIntervalMs: 60_000,
      logger,
      maxPending: 5,
    });
    const ctx = (id: string) =>
      ({ receivedAt: NOW, id, attempts: 1, startedAt: 0, skipAccessLog: false }) as never;
    const outcome = { kind: 'ok', status: 200, error: undefined, durationMs: 5 } as const;

    // Another process holds the write lock (an exclusive transaction on its own connection).
    const other = new Database(file);
    other.exec('BEGIN EXCLUSIVE');
    for (const id of ['r1', 'r2', 'r3']) recorder.record(ctx(id), outcome);
    const started = performance.now();
    recorder.flush();
    const waited = performance.now() - started;
    assert.ok(waited >= 900 && waited < 5000, `waited ${waited}ms, about busy_timeout`);
    assert.equal(recorder.pending, 3, 'the batch is kept');
    const failures = lines.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(failures.length, 1);
    assert.match(String(failures[0]!.msg), /could not be written; kept/);

    // More than the bound while still locked: the oldest go, counted.
    for (const id of ['r4', 'r5', 'r6', 'r7']) recorder.record(ctx(id), outcome);
    recorder.flush();
    assert.equal(recorder.pending, 5);
    const dropped = lines.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.dropped !== undefined);
    assert.equal(dropped?.dropped, 2);

    other.exec('ROLLBACK');
    other.close();
    recorder.close();
    const ids = (
      new Database(file, { readonly: true }).prepare('SELECT request_id FROM requests ORDER BY id').all() as {
        request_id: string;
      }[]
    ).map((r) => r.request_id);
    assert.deepEqual(ids, ['r3', 'r4', 'r5', 'r6', 'r7']);
    db.close();
  });
});
