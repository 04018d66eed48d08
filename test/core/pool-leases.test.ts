/**
 * Concurrency leases: an upstream slot is held for exactly as long as its attempt, and released on
 * every path (success, upstream error, failover, client abort before or after the first byte, idle
 * and first-byte timeouts, shutdown with a stream in flight), so no counter is ever left stuck. A
 * client that goes away aborts the upstream request at once and is never retried elsewhere.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { jsonError, okStream, openExchange, poolHarness, servedBy, until } from '../helpers/pool.js';
import { closedPort, deadline, parseSse, postJson, type RawResponse } from '../helpers/raw.js';

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

const h = poolHarness();

function post(g: TestGateway): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', BODY), 5000, 'the client response never ended');
}

/** Every upstream's in-flight count and the gateway's request count return to 0. */
async function assertReleased(g: TestGateway): Promise<void> {
  const state = g.gw.pool.state;
  const names = g.gw.pool.upstreams.map((u) => u.name);
  const counts = () => names.map((n) => `${n}=${state.inFlight(n)}`).join(' ') + ` requests=${g.gw.inflight}`;
  try {
    await until(() => g.gw.inflight === 0 && names.every((n) => state.inFlight(n) === 0), 'leases released');
  } catch {
    assert.fail(`a lease or request was left behind: ${counts()}`);
  }
}

function lastEvent(r: RawResponse): Record<string, unknown> {
  const events = parseSse(r.text());
  return events[events.length - 1]!.json;
}

describe('pool: leases', () => {
  afterEach(() => h.cleanup());

  it('client abort mid-stream: the upstream request is closed within 1s, the slot freed, and nothing retried', async () => {
    const A = await h.upstream('A');
    const B = await h.upstream('B');
    const g = await h.gateway([
      { name: 'A', url: A.url, priority: 0 },
      { name: 'B', url: B.url, priority: 1 },
    ]);
    const held = A.holdNext(5); // through the first output_text.delta
    const client = await openExchange(g.url, BODY);
    const stream = await held;
    await deadline(client.waitFor('response.output_text.delta'), 5000, 'the client never got the delta');
    assert.equal(g.gw.pool.state.inFlight('A'), 1);

    const abortedAt = performance.now();
    client.socket.destroy();
    const closedAt = await deadline(stream.closed, 2000, 'the upstream request was never closed');
    const ms = closedAt - abortedAt;
    assert.ok(ms < 1000, `the upstream saw the close ${Math.round(ms)}ms after the client left`);
    assert.equal(stream.res.writableFinished, false, 'the upstream did not get to finish its response');

    await assertReleased(g);
    assert.equal(A.requests.length, 1);
    assert.equal(B.requests.length, 0, 'an aborted request is never retried');
    const line = g.logs.find((l) => l.msg === 'request');
    assert.equal(line?.outcome, 'client_abort');
    assert.equal(line?.status, 499);
    assert.equal(line?.attempts, undefined, 'one attempt only');
  });

  describe('released on every path', () => {
    it('success', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      let during: number | undefined;
      A.answer((req, res, rec) => {
        during = g.gw.pool.state.inFlight('A');
        return okStream('A')(req, res, rec);
      });
      const r = await post(g);
      assert.equal(r.status, 200);
      assert.equal(during, 1, 'the slot is held while the upstream answers');
      await assertReleased(g);
    });

    it('upstream error (500, one upstream)', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      let during: number | undefined;
      A.answer((req, res, rec) => {
        during = g.gw.pool.state.inFlight('A');
        return jsonError(500, { error: { message: 'boom', type: 'server_error', code: null } })(
          req,
          res,
          rec,
        );
      });
      const r = await post(g);
      assert.equal(r.status, 500);
      assert.equal(during, 1);
      await assertReleased(g);
    });

    it('failover: a refused connection, a 500, then success', async () => {
      const B = await h.upstream('B');
      const C = await h.upstream('C');
      B.answer(jsonError(500, { error: { message: 'boom', type: 'server_error', code: null } }));
      const g = await h.gateway([
        { name: 'A', url: `http://127.0.0.1:${await closedPort()}`, priority: 0 },
        { name: 'B', url: B.url, priority: 1 },
        { name: 'C', url: C.url, priority: 2 },
      ]);
      const r = await post(g);
      assert.equal(servedBy(r), 'C');
      assert.equal(B.requests.length, 1);
      await assertReleased(g);
    });

    it('client abort before the first byte', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      const held = A.holdNext(0); // not even the head
      const client = await openExchange(g.url, BODY);
      const stream = await held;
      assert.equal(g.gw.pool.state.inFlight('A'), 1);
      client.socket.destroy();
      await deadline(stream.closed, 2000, 'the upstream request was never closed');
      await assertReleased(g);
      assert.equal(client.received().length, 0);
    });

    it('idle timeout mid-stream', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }], { proxy: { timeouts: { idle: '200ms' } } });
      const held = A.holdNext(5);
      const pending = post(g);
      const stream = await held;
      assert.equal(g.gw.pool.state.inFlight('A'), 1);
      const r = await pending;
      assert.equal(r.status, 200);
      const last = lastEvent(r);
      assert.equal(last.type, 'response.failed');
      assert.match(String((last.response as { error: { message: string } }).error.message), /idle|stalled/i);
      await deadline(stream.closed, 2000, 'the stalled upstream request was never closed');
      await assertReleased(g);
    });

    it('first-byte timeout', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }], { proxy: { timeouts: { firstByte: '200ms' } } });
      const held = A.holdNext(0);
      const pending = post(g);
      const stream = await held;
      assert.equal(g.gw.pool.state.inFlight('A'), 1);
      const r = await pending;
      assert.equal(r.status, 504);
      await deadline(stream.closed, 2000, 'the silent upstream request was never closed');
      await assertReleased(g);
    });

    it('queue wait timeout (the waiter holds no lease; the open stream keeps exactly one)', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url, maxConcurrency: 1 }], {
        pool: { queue: { waitTimeout: '100ms' } },
      });
      const held = A.holdNext();
      const first = post(g);
      const stream = await held;
      const r = await post(g);
      assert.equal(r.status, 429);
      assert.equal(g.gw.pool.state.inFlight('A'), 1);
      stream.finish();
      assert.equal((await first).status, 200);
      await assertReleased(g);
    });

    it('gateway shutdown with a stream in flight (close(100))', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      const held = A.holdNext(5);
      const pending = post(g);
      const stream = await held;
      assert.equal(g.gw.pool.state.inFlight('A'), 1);
      assert.equal(g.gw.inflight, 1);

      await deadline(g.close(100), 5000, 'the gateway never closed');
      const r = await pending;
      assert.equal(r.status, 200);
      const last = lastEvent(r);
      assert.equal(last.type, 'response.failed');
      assert.equal((last.response as { error: { code: string } }).error.code, 'server_shutting_down');
      await deadline(stream.closed, 2000, 'the upstream request was never closed');
      assert.equal(g.gw.pool.state.inFlight('A'), 0);
      assert.equal(g.gw.inflight, 0);
    });
  });
});
