/**
 * plugin dashboard, usage panel data: `{path}/api/usage` sums the usage records per client key and per
 * account, today and this month (UTC), behind the admin token; with records off it says so.
 */
import assert from 'node:assert/strict';
import { openForWriting } from '../../core/usage/usage-db.js';
import { UsageWriter } from '../../core/usage/usage-writer.js';
import type { UsageSummaryMessage, UsageLine } from '../../plugins/dashboard/usage-summary.js';
import { ADMIN_TOKEN, dashboardConfig, get } from '../helpers/dashboard-feed.js';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { okStream } from '../helpers/scripted-upstream.js';
import { record, usageTempDir } from '../helpers/usage.js';

const BEARER = { authorization: `Bearer ${ADMIN_TOKEN}` };

async function summary(url: string): Promise<UsageSummaryMessage> {
  const res = await get(url, '/dashboard/api/usage', BEARER);
  assert.equal(res.status, 200, res.text());
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return JSON.parse(res.text()) as UsageSummaryMessage;
}

const line = (lines: UsageLine[], name: string) => lines.find((l) => l.name === name);

describe('plugin dashboard: usage per key and per account', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  const tmp = usageTempDir('dashboard-usage');

  it('today and this month from the records: live requests, earlier ones, and nothing from last month', async () => {
    const path = tmp.file();
    const now = Date.now();
    const d = new Date(now);
    const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    // Records from before this boot: one today, one last month, and (past the 1st) one earlier this month.
    const seeded = [
      record({ at: dayStart, key: 'ci', account: 'acct-b', input: 1000, output: 500, total: 1500 }),
      record({
        at: monthStart - 3_600_000,
        key: 'ci',
        account: 'acct-b',
        input: 9e6,
        output: 9e6,
        total: 18e6,
      }),
    ];
    const earlierThisMonth = monthStart < dayStart;
    if (earlierThisMonth)
      seeded.push(
        record({ at: monthStart, key: 'tester', account: 'acct-a', input: 7, output: 3, total: 10 }),
      );
    const db = await openForWriting(path);
    new UsageWriter(db).insert(seeded);
    db.close();

    const up = await h.upstream(okStream('acct-a'));
    const gw = await h.gatewayYaml(
      dashboardConfig({
        upstreams: [{ name: 'acct-a', baseUrl: `${up.url}/v1`, apiKey: 'sk-upstream-dash-usage-secret' }],
        usage: { enabled: true, path, flushInterval: '50ms' },
      }),
    );
    const refused = await get(gw.url, '/dashboard/api/usage');
    assert.equal(refused.status, 401, 'the admin token is required');

    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/v1/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-test', input: 'hi', stream: true }),
      });
      await res.text();
    }
    // The summary is cached for a few seconds, and records are written in batches: poll until it shows them.
    const deadline = performance.now() + 15_000;
    let s = await summary(gw.url);
    while (line(s.keys, 'tester')?.today.requests !== 3) {
      assert.ok(performance.now() < deadline, `the three requests never showed: ${JSON.stringify(s.keys)}`);
      await new Promise((r) => setTimeout(r, 100));
      s = await summary(gw.url);
    }
    assert.ok(s.available);
    assert.equal(s.dayStart, dayStart);
    assert.equal(s.monthStart, monthStart);
    // happyStream reports 10 input and 2 output tokens per answer.
    const tester = line(s.keys, 'tester')!;
    assert.deepEqual(tester.today, { requests: 3, errors: 0, input: 30, output: 6, total: 36 });
    assert.deepEqual(
      tester.month,
      earlierThisMonth
        ? { requests: 4, errors: 0, input: 37, output: 9, total: 46 }
        : { requests: 3, errors: 0, input: 30, output: 6, total: 36 },
    );
    const ci = line(s.keys, 'ci')!;
    assert.deepEqual(ci.today, { requests: 1, errors: 0, input: 1000, output: 500, total: 1500 });
    assert.deepEqual(ci.month, ci.today, 'last month is not this month');
    assert.deepEqual(line(s.accounts, 'acct-b')!.month, ci.month);
    assert.equal(line(s.accounts, 'acct-a')!.today.requests, 3);
    assert.equal(s.keys[0]!.name, 'ci', 'the biggest this month first');
  });

  it('with usage records off, the panel says so', async () => {
    const gw = await h.gatewayYaml(
      dashboardConfig({
        upstreams: [{ name: 'up1', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-upstream-dash-off-secret' }],
      }),
    );
    const s = await summary(gw.url);
    assert.equal(s.available, false);
    assert.deepEqual([s.keys, s.accounts], [[], []]);
  });
});
