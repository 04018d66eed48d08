/**
 * `tapgate usage`: totals per key, account, model or day from the usage database the config names,
 * as an aligned table, JSON or CSV. The file is opened read-only, so it works beside a running gateway.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ConfigError, loadConfigFile, parseConfig, type LoadedConfig } from '../core/config/config.js';
import { parsePeriod } from '../core/config/units.js';
import { openForReading, UsageDbError } from '../core/usage/usage-db.js';
import { SqliteUsageReader } from '../core/usage/usage-reader.js';
import type { UsageGroup, UsageRow } from '../core/usage/usage-types.js';

export const USAGE_HELP = `Usage: tapgate usage [--config PATH] [--since WHEN] [--until WHEN]
                     [--by key|account|model|day[,…]] [--json | --csv]

Tokens and requests per client key, account (upstream), model or UTC day, read from
the usage database (usage.path in the config).

Options:
  -c, --config PATH   config file (default: ./config.yaml)
  --since WHEN        start of the period: 7d, 36h (ago), 2026-12-01 (UTC) or an ISO time
                      (default: 30d)
  --until WHEN        end of the period, excluded (default: now)
  --by GROUPS         key, account, model or day, or several: --by key,model (default: key)
  --json              the rows as a JSON array
  --csv               a header line and the rows (RFC 4180)
  -h, --help          show this help`;

const GROUPS: readonly UsageGroup[] = ['key', 'account', 'model', 'day'];
const SUMS = [
  ['requests', 'requests'],
  ['errors', 'errors'],
  ['input', 'input'],
  ['cached', 'cachedInput'],
  ['output', 'output'],
  ['reasoning', 'reasoning'],
  ['total', 'total'],
] as const;

class UsageArgError extends Error {}

interface Args {
  config: string;
  since: number;
  until: number;
  by: UsageGroup[];
  format: 'table' | 'json' | 'csv';
}

export async function runUsage(argv: string[], now = Date.now()): Promise<number> {
  let args: Args;
  try {
    const parsed = parseUsageArgs(argv, now);
    if (parsed === 'help') {
      process.stdout.write(USAGE_HELP + '\n');
      return 0;
    }
    args = parsed;
  } catch (err) {
    process.stderr.write(`tapgate usage: ${(err as Error).message}\n\n${USAGE_HELP}\n`);
    return 2;
  }
  let file: string;
  try {
    const loaded = loadUsageConfig(resolve(args.config));
    file = resolve(dirname(loaded.source.file), loaded.config.usage.path);
  } catch (err) {
    process.stderr.write(`tapgate usage: ${(err as Error).message}\n`);
    return 1;
  }
  let rows: UsageRow[];
  try {
    const db = await openForReading(file);
    if (db === undefined) {
      process.stderr.write(
        `tapgate usage: no usage records yet: ${file} does not exist (usage.path; the gateway creates it when usage.enabled is true)\n`,
      );
      return 1;
    }
    try {
      rows = new SqliteUsageReader(db, () => now).querySync({
        since: args.since,
        until: args.until,
        by: args.by,
      });
    } finally {
      db.close();
    }
  } catch (err) {
    const message =
      err instanceof UsageDbError ? err.message : `reading ${file} failed: ${(err as Error).message}`;
    process.stderr.write(`tapgate usage: ${message}\n`);
    return 1;
  }
  if (args.format === 'json')
    process.stdout.write(
      JSON.stringify(
        rows.map((r) => pick(r, args.by)),
        null,
        2,
      ) + '\n',
    );
  else if (args.format === 'csv') process.stdout.write(csv(rows, args.by));
  else process.stdout.write(table(rows, args));
  return 0;
}

/** The options, or 'help'; throws UsageArgError with a one-line reason. */
export function parseUsageArgs(argv: string[], now: number): Args | 'help' {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c', default: './config.yaml' },
        since: { type: 'string', default: '30d' },
        until: { type: 'string' },
        by: { type: 'string', default: 'key' },
        json: { type: 'boolean' },
        csv: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageArgError((err as Error).message);
  }
  if (values.help) return 'help';
  if (values.json && values.csv) throw new UsageArgError('--json and --csv cannot be used together');
  const since = when(values.since!, '--since', now);
  const until = values.until === undefined ? now : when(values.until, '--until', now);
  if (since >= until)
    throw new UsageArgError(`--since (${iso(since)}) must be before --until (${iso(until)})`);
  const by: UsageGroup[] = [];
  for (const part of values.by!.split(',').map((p) => p.trim())) {
    if (!GROUPS.includes(part as UsageGroup))
      throw new UsageArgError(`--by takes key, account, model or day (or a comma list), got "${part}"`);
    if (by.includes(part as UsageGroup)) throw new UsageArgError(`--by names "${part}" twice`);
    by.push(part as UsageGroup);
  }
  return {
    config: values.config!,
    since,
    until,
    by,
    format: values.json ? 'json' : values.csv ? 'csv' : 'table',
  };
}

/** `7d`/`36h`/`90m` ago, a UTC date `2026-12-01`, or an ISO time with its zone. */
function when(text: string, flag: string, now: number): number {
  const ago = parsePeriod(text);
  if (ago !== undefined) return now - ago;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    const t = Date.parse(text + 'T00:00:00Z');
    if (!Number.isNaN(t) && iso(t).startsWith(text)) return t;
  } else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return t;
  }
  throw new UsageArgError(
    `${flag} takes a period ago (7d, 36h), a date (2026-12-01) or an ISO time with a zone, got "${text}"`,
  );
}

/**
 * The config, for `usage.path`. A config the gateway would refuse only for another section (a
 * variable this shell does not set, say) still gives its `usage` section.
 */
function loadUsageConfig(file: string): LoadedConfig {
  try {
    return loadConfigFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError) || err.issues.some((i) => i.path[0] === 'usage' || i.path.length === 0))
      throw err;
    try {
      const usage = (YAML.parse(readFileSync(file, 'utf8')) as { usage?: unknown } | null)?.usage;
      return parseConfig(YAML.stringify(usage === undefined ? {} : { usage }), file);
    } catch {
      throw err;
    }
  }
}

function pick(row: UsageRow, by: readonly UsageGroup[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const g of by) out[g] = row[g] ?? null;
  for (const [, field] of SUMS) out[field] = row[field];
  return out;
}

function csv(rows: readonly UsageRow[], by: readonly UsageGroup[]): string {
  const lines = [[...by, ...SUMS.map(([name]) => name)].join(',')];
  for (const r of rows)
    lines.push([...by.map((g) => csvField(r[g] ?? '')), ...SUMS.map(([, f]) => String(r[f]))].join(','));
  return lines.map((l) => l + '\r\n').join('');
}

/** RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function table(rows: readonly UsageRow[], args: Args): string {
  const head = `usage from ${iso(args.since)} to ${iso(args.until)} (UTC), by ${args.by.join(', ')}\n`;
  if (rows.length === 0) return head + 'no requests in this period\n';
  const header = [...args.by, ...SUMS.map(([name]) => name)];
  const body = rows.map((r) => [
    ...args.by.map((g) => printable(r[g] ?? '-')),
    ...SUMS.map(([, f]) => String(r[f])),
  ]);
  const totals = [
    ...args.by.map((_, i) => (i === 0 ? 'TOTAL' : '')),
    ...SUMS.map(([, f]) => String(rows.reduce((sum, r) => sum + r[f], 0))),
  ];
  const all = [header, ...body, totals];
  const widths = header.map((_, c) => Math.max(...all.map((line) => line[c]!.length)));
  const groups = args.by.length;
  const render = (line: string[]) =>
    line
      .map((cell, c) => (c < groups ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return head + [render(header), ...body.map(render), rule, render(totals)].join('\n') + '\n';
}

/** A name as one table cell: control characters (a model name is the client's text) shown escaped. */
function printable(value: string): string {
  return value.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function iso(t: number): string {
  return new Date(t).toISOString().replace('.000Z', 'Z');
}
