/**
 * Usage records are exact: 1,000+ mixed requests (streamed and JSON, ok and failed, every route family,
 * failovers) through a real gateway to two loopback upstreams, then the records compared, request by
 * request, with what the upstreams reported.
 */
import assert from 'node:assert/strict';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { gatewayConfig } from '../helpers/proxy-config.js';
import { RESPONSES_POST_ROUTES } from '../helpers/routes.js';
import { readRecords, usageTempDir } from '../helpers/usage.js';
import { UsageLedger, type Plan } from './accuracy-upstream.js';

const REQUESTS = 1050;
const CONCURRENCY = 16;
const PLANS: readonly Plan[] = ['ok', 'ok', 'ok', 'failed-stream', 'bad-request', 'failover', 'ok'];

interface Sent {
  id: string;
  route: string;
  plan: Plan;
  stream: boolean;
  status: number;
}

describe('usage records: exact over 1,000 mixed requests', function () {
  this.timeout(180_000);
  const h = Harness.perTest();
  const tmp = usageTempDir('accuracy');

  it('records one row per request with the tokens the upstream reported, outcomes and the answering account', async () => {
    const ledger = new UsageLedger();
    const a = await h.upstream(ledger.handler('acct-a'));
    const b = await h.upstream(ledger.handler('acct-b'));
    const path = tmp.file();
    const gw = await h.gatewayYaml(
      gatewayConfig({
        upstreams: [
          { name: 'acct-a', type: 'openai', baseUrl: `${a.url}/v1`, apiKey: 'sk-upstream-acct-a-secret' },
          { name: 'acct-b', type: 'openai', baseUrl: `${b.url}/v1`, apiKey: 'sk-upstream-acct-b-secret' },
        ],
        // A 500 rests an account only briefly: the test is about counting, not cooldowns.
        proxy: { transientCooldown: '10ms' },
        usage: { enabled: true, path, flushInterval: '50ms' },
      }),
    );

    const sent: Sent[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const route = RESPONSES_POST_ROUTES[i % RESPONSES_POST_ROUTES.length]!;
        const compact = route.endsWith('/compact');
        const plan = PLANS[i % PLANS.length]!;
        const stream = !compact && i % 3 !== 0;
        const id = `acc-${i}`;
        const res = await fetch(gw.url + route, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${CLIENT_KEY}`,
            'content-type': 'application/json',
            'x-request-id': id,
          },
          body: JSON.stringify({ model: `gpt-test-${i % 3}`, input: 'hi', stream, metadata: { plan } }),
        });
        await res.arrayBuffer();
        sent.push({ id, route, plan, stream, status: res.status });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // A graceful stop writes the last batch.
    await gw.close(5000);

    const records = readRecords(path);
    assert.equal(records.length, REQUESTS, 'one record per request');
    const byId = new Map(records.map((r) => [r.requestId, r]));
    assert.equal(byId.size, REQUESTS, 'request ids are unique');

    const sum = { input: 0, cachedInput: 0, output: 0, reasoning: 0, total: 0 };
    const want = { ...sum };
    let failovers = 0;
    let failed = 0;
    for (const s of sent) {
      const r = byId.get(s.id);
      assert.ok(r !== undefined, `no record for ${s.id}`);
      const reported = ledger.reported.get(s.id);
      const at = `${s.id} (${s.plan}, ${s.route}, stream ${s.stream})`;
      assert.equal(r.status, s.status, `${at}: status`);
      assert.equal(r.key, 'tester', `${at}: key`);
      assert.equal(r.model, `gpt-test-${Number(s.id.slice(4)) % 3}`, `${at}: model`);
      assert.equal(r.route, s.route.endsWith('/compact') ? 'responses.compact' : 'responses', `${at}: route`);
      for (const k of Object.keys(sum) as (keyof typeof sum)[]) {
        assert.equal(r[k], reported?.[k] ?? 0, `${at}: ${k}`);
        sum[k] += r[k];
        want[k] += reported?.[k] ?? 0;
      }
      if (reported !== undefined)
        assert.equal(r.account, reported.account, `${at}: the account that answered`);
      const failsStream = s.plan === 'failed-stream' && s.stream;
      if (s.plan === 'bad-request' || failsStream) {
        failed++;
        assert.equal(r.outcome, 'error', `${at}: outcome`);
        assert.ok(r.errorCode !== null, `${at}: an error code`);
      } else {
        assert.equal(r.outcome, 'ok', `${at}: outcome`);
        assert.equal(r.status, 200, `${at}: status`);
      }
      if (s.plan === 'failover') {
        failovers++;
        assert.equal(r.attempts, 2, `${at}: attempts`);
      }
    }
    assert.deepEqual(sum, want, 'token totals equal what the upstreams reported');
    assert.ok(want.total > 1_000_000, 'the upstreams reported real numbers');
    assert.ok(failovers > 100 && failed > 100, `a real mix: ${failovers} failovers, ${failed} failures`);
    assert.ok(
      records.some((r) => r.account === 'acct-a') && records.some((r) => r.account === 'acct-b'),
      'both accounts answered',
    );
  });
});
