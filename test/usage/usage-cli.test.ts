/**
 * Issue 14: `tapgate usage` through the real binary, against records written through the store with
 * known values: the table (aligned, with a totals line), --json, --csv (RFC 4180 quoting), --by day,
 * --by key,model, --since as a period ago; bad flags (exit 2, one line and the usage text); no
 * database yet (exit 1). The config's other sections need not load: a variable this shell lacks
 * does not stop it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openForWriting } from '../../core/usage/usage-db.js';
import { UsageWriter } from '../../core/usage/usage-writer.js';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { record } from '../helpers/usage.js';

const DAY = 86_400_000;
const JAN = (d: number, h = 12) => Date.UTC(2026, 0, d, h);

let dir: string;
let config: string;

async function usage(
  args: string[],
  cfg = config,
): Promise<{ code: number | null; out: string; err: string }> {
  const cli = runCli(['usage', '--config', cfg, ...args]);
  const { code } = await cli.closed;
  return { code, out: cli.stdout(), err: cli.stderr() };
}

describe('usage: tapgate usage', function () {
  this.timeout(30_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-usage-cli-'));
    config = join(dir, 'tapgate.yaml');
    writeFileSync(
      config,
      [
        'upstreams:',
        '  - name: acct-a',
        '    type: openai',
        '    baseUrl: http://127.0.0.1:9/v1',
        '    apiKey: ${TAPGATE_USAGE_TEST_UNSET_KEY}',
        'usage:',
        '  path: db/usage.db',
        '',
      ].join('\n'),
    );
    const db = await openForWriting(join(dir, 'db', 'usage.db'));
    new UsageWriter(db).insert([
      record({
        at: JAN(5),
        key: 'alice',
        model: 'gpt-5',
        input: 100,
        cachedInput: 40,
        output: 10,
        reasoning: 2,
        total: 110,
      }),
      record({
        at: JAN(5, 20),
        key: 'alice',
        model: 'o3',
        input: 300,
        cachedInput: 0,
        output: 50,
        reasoning: 30,
        total: 350,
      }),
      record({
        at: JAN(6),
        key: 'bob',
        model: 'gpt-5',
        input: 1000,
        cachedInput: 500,
        output: 200,
        reasoning: 0,
        total: 1200,
      }),
      record({
        at: JAN(6, 1),
        key: 'bob',
        model: 'gpt-5',
        outcome: 'error',
        status: 502,
        input: 0,
        cachedInput: 0,
        output: 0,
        reasoning: 0,
        total: 0,
      }),
      record({
        at: JAN(7),
        key: null,
        model: 'odd, "quoted" model',
        input: 7,
        cachedInput: 0,
        output: 3,
        reasoning: 0,
        total: 10,
      }),
      // Outside the January period; inside `--since 7d`.
      record({
        at: Date.now() - 2 * DAY,
        key: 'carol',
        model: 'gpt-5',
        input: 1,
        cachedInput: 0,
        output: 1,
        reasoning: 0,
        total: 2,
      }),
    ]);
    db.close();
  });
  after(() => {
    killStrayClis();
    rmSync(dir, { recursive: true, force: true });
  });

  const JANUARY = ['--since', '2026-01-01', '--until', '2026-02-01'];

  it('prints an aligned table per key with a totals line', async () => {
    const { code, out, err } = await usage(JANUARY);
    assert.equal(code, 0, err);
    assert.equal(
      out,
      [
        'usage from 2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z (UTC), by key',
        'key    requests  errors  input  cached  output  reasoning  total',
        'bob           2       1   1000     500     200          0   1200',
        'alice         2       0    400      40      60         32    460',
        '-             1       0      7       0       3          0     10',
        '-----  --------  ------  -----  ------  ------  ---------  -----',
        'TOTAL         5       1   1407     540     263         32   1670',
        '',
      ].join('\n'),
    );
  });

  it('--json --by key,model: the rows as a JSON array, highest total first', async () => {
    const { code, out } = await usage([...JANUARY, '--json', '--by', 'key,model']);
    assert.equal(code, 0);
    const sums = (
      requests: number,
      errors: number,
      input: number,
      cachedInput: number,
      output: number,
      reasoning: number,
      total: number,
    ) => ({
      requests,
      errors,
      input,
      cachedInput,
      output,
      reasoning,
      total,
    });
    assert.deepEqual(JSON.parse(out), [
      { key: 'bob', model: 'gpt-5', ...sums(2, 1, 1000, 500, 200, 0, 1200) },
      { key: 'alice', model: 'o3', ...sums(1, 0, 300, 0, 50, 30, 350) },
      { key: 'alice', model: 'gpt-5', ...sums(1, 0, 100, 40, 10, 2, 110) },
      { key: null, model: 'odd, "quoted" model', ...sums(1, 0, 7, 0, 3, 0, 10) },
    ]);
  });

  it('--csv --by model: a header and RFC 4180 rows', async () => {
    const { code, out } = await usage([...JANUARY, '--csv', '--by', 'model']);
    assert.equal(code, 0);
    assert.equal(
      out,
      'model,requests,errors,input,cached,output,reasoning,total\r\n' +
        'gpt-5,3,1,1100,540,210,2,1310\r\n' +
        'o3,1,0,300,0,50,30,350\r\n' +
        '"odd, ""quoted"" model",1,0,7,0,3,0,10\r\n',
    );
  });

  it('--by day: one row per UTC day, in order; --since 7d: only the recent record', async () => {
    const byDay = await usage([...JANUARY, '--json', '--by', 'day']);
    assert.deepEqual(
      (JSON.parse(byDay.out) as { day: string; requests: number; total: number }[]).map((r) => [
        r.day,
        r.requests,
        r.total,
      ]),
      [
        ['2026-01-05', 2, 460],
        ['2026-01-06', 2, 1200],
        ['2026-01-07', 1, 10],
      ],
    );
    const recent = await usage(['--since', '7d', '--json']);
    assert.deepEqual(JSON.parse(recent.out), [
      { key: 'carol', requests: 1, errors: 0, input: 1, cachedInput: 0, output: 1, reasoning: 0, total: 2 },
    ]);
  });

  it('bad flags: exit 2 with a one-line reason and the usage text', async () => {
    const cases = [
      [
        ['--by', 'team'],
        /^tapgate usage: --by takes key, account, model or day \(or a comma list\), got "team"$/,
      ],
      [['--since', 'yesterday'], /^tapgate usage: --since takes a period ago \(7d, 36h\)/],
      [['--json', '--csv'], /^tapgate usage: --json and --csv cannot be used together$/],
      [
        ['--since', '2026-02-01', '--until', '2026-01-01'],
        /^tapgate usage: --since \(2026-02-01T00:00:00Z\) must be before/,
      ],
      [['--verbose'], /^tapgate usage: Unknown option '--verbose'/],
    ] as const;
    // One process each, started together.
    const results = await Promise.all(cases.map(([args]) => usage([...args])));
    results.forEach(({ code, out, err }, i) => {
      assert.equal(code, 2, err);
      assert.equal(out, '');
      const [first, blank, usageLine] = err.split('\n');
      assert.match(first!, cases[i]![1]);
      assert.equal(blank, '');
      assert.match(usageLine!, /^Usage: tapgate usage /);
    });
  });

  it('no database yet: exit 1 naming the file; --help lists the command', async () => {
    const other = join(dir, 'empty.yaml');
    writeFileSync(other, 'usage:\n  path: nothing-here.db\n');
    const { code, out, err } = await usage([], other);
    assert.equal(code, 1);
    assert.equal(out, '');
    assert.equal(
      err,
      `tapgate usage: no usage records yet: ${join(dir, 'nothing-here.db')} does not exist (usage.path; the gateway creates it when usage.enabled is true)\n`,
    );

    const help = runCli(['--help']);
    assert.equal((await help.closed).code, 0);
    assert.match(help.stdout(), /tapgate usage \[--since 7d\]/);
    const own = runCli(['usage', '--help']);
    assert.equal((await own.closed).code, 0);
    assert.match(own.stdout(), /^Usage: tapgate usage /);
  });
});
