/**
 * The concurrency queue: with every upstream at maxConcurrency, a request waits (headers held back)
 * for a slot, gives up with 429 after pool.queue.waitTimeout, gets 429 at once when the queue is
 * full, and leaves the queue, never reaching an upstream, when its client goes away.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import {
  jsonError,
  okStream,
  openExchange,
  poolHarness,
  SERVED_BY,
  servedBy,
  until,
  type ScriptedUpstream,
} from '../helpers/pool.js';
import { deadline, parseHttpResponse, postJson, type RawResponse } from '../helpers/raw.js';
import { happyStream } from '../helpers/upstream.js';

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

const h = poolHarness();

function post(g: TestGateway, body: Record<string, unknown> = BODY): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', body), 5000, 'the client response never ended');
}

/** One upstream with a single slot, and the given pool.queue settings. */
async function oneSlot(queue: Record<string, unknown>): Promise<{ A: ScriptedUpstream; g: TestGateway }> {
  const A = await h.upstream('A');
  const g = await h.gateway([{ name: 'A', url: A.url, maxConcurrency: 1 }], { pool: { queue } });
  return { A, g };
}

function errorOf(r: RawResponse): { message: string; type: string; code: string | null } {
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return r.json().error as { message: string; type: string; code: string | null };
}

describe('pool: concurrency queue', () => {
  afterEach(() => h.cleanup());

  it('a second request waits with its headers held back, and succeeds once the first finishes', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '2s' });
    const held = A.holdNext();
    const first = post(g, { ...BODY, input: 'first' });
    const stream = await held;

    const second = await openExchange(g.url, { ...BODY, input: 'second' });
    await until(() => g.gw.pool.queue.length === 1, 'the second request should be queued');
    assert.equal(second.received().length, 0, 'no byte (not even headers) may reach a queued client');
    assert.equal(A.requests.length, 1, 'the queued request must not reach the upstream yet');
    assert.equal(g.gw.pool.state.inFlight('A'), 1);

    // The first stream is still open and streaming: one more event goes out while the second waits.
    await new Promise<void>((r) => stream.res.write(': still going\n\n', () => r()));
    assert.equal(second.received().length, 0);

    stream.finish();
    const r1 = await first;
    assert.equal(r1.status, 200);
    const bytes = await deadline(second.ended, 5000, 'the queued request never finished');
    const r2 = parseHttpResponse(bytes);
    assert.equal(r2.status, 200);
    assert.equal(r2.headers[SERVED_BY], 'A');
    assert.equal(r2.complete, true);
    assert.equal(r2.body.toString(), happyStream('resp_A').join(''));
    assert.deepEqual(
      A.requests.map((r) => r.json!.input),
      ['first', 'second'],
    );
    assert.equal(g.gw.pool.queue.length, 0);
  });

  it('two waiters and one freed slot: only the first takes it, the second waits on (maxConcurrency holds)', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '5s' });
    const held1 = A.holdNext();
    const first = post(g, { ...BODY, input: 'first' });
    const s1 = await held1;
    const second = post(g, { ...BODY, input: 'second' });
    await until(() => g.gw.pool.queue.length === 1, 'the second request should be queued');
    const third = post(g, { ...BODY, input: 'third' });
    await until(() => g.gw.pool.queue.length === 2, 'the third request should be queued');

    const held2 = A.holdNext();
    s1.finish();
    const s2 = await held2;
    await until(
      () => g.gw.pool.queue.length === 1 || A.requests.length > 2,
      'the third request should go back to waiting',
    );
    assert.deepEqual(
      A.requests.map((r) => r.json!.input),
      ['first', 'second'],
      'only one waiter may take the freed slot',
    );
    assert.equal(g.gw.pool.state.inFlight('A'), 1);

    s2.finish();
    assert.deepEqual([servedBy(await first), servedBy(await second), servedBy(await third)], ['A', 'A', 'A']);
    assert.deepEqual(
      A.requests.map((r) => r.json!.input),
      ['first', 'second', 'third'],
    );
  });

  it('a burst of 8 requests on maxConcurrency 2: all served, never more than 2 in flight', async () => {
    const A = await h.upstream('A');
    const g = await h.gateway([{ name: 'A', url: A.url, maxConcurrency: 2 }], {
      pool: { queue: { waitTimeout: '5s' } },
    });
    let peak = 0;
    A.fallback = (req, res, rec) => {
      peak = Math.max(peak, g.gw.pool.state.inFlight('A'));
      setImmediate(() => okStream('A')(req, res, rec));
    };
    // The first two hold their slots until the other six are queued, then all go at once.
    const held = [A.holdNext(), A.holdNext()];
    const all = Array.from({ length: 8 }, (_, i) => post(g, { ...BODY, input: `burst-${i}` }));
    const open = await Promise.all(held);
    await until(() => g.gw.pool.queue.length === 6, 'six requests should be queued');
    for (const s of open) s.finish();
    const done = await Promise.all(all);
    assert.deepEqual(
      done.map((r) => r.status),
      Array(8).fill(200),
    );
    assert.equal(A.requests.length, 8);
    assert.ok(peak <= 2, `${peak} requests were in flight at once on a maxConcurrency of 2`);
    assert.equal(g.gw.pool.state.inFlight('A'), 0);
  });

  it('waitTimeout 300ms: the waiter gets 429 "Too many pending requests" with Retry-After, and never reaches the upstream', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '300ms' });
    const held = A.holdNext();
    const first = post(g);
    const stream = await held;

    const started = performance.now();
    const r = await post(g, { ...BODY, input: 'waiter' });
    const waited = performance.now() - started;
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    const err = errorOf(r);
    assert.match(err.message, /^Too many pending requests/);
    assert.equal(err.type, 'rate_limit_error');
    assert.ok(waited >= 290 && waited < 2000, `waited ${Math.round(waited)}ms, expected about 300ms`);
    assert.equal(A.requests.length, 1);
    assert.equal(g.gw.pool.queue.length, 0);

    stream.finish();
    assert.equal(servedBy(await first), 'A');
  });

  it('maxQueue: 0 → 429 at once, without waiting', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '10s', maxQueue: 0 });
    const held = A.holdNext();
    const first = post(g);
    const stream = await held;

    const started = performance.now();
    const r = await post(g);
    assert.ok(performance.now() - started < 1000, 'the request should not wait for waitTimeout');
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(errorOf(r).message, /^Too many pending requests/);
    assert.equal(A.requests.length, 1);

    stream.finish();
    await first;
  });

  it('a full queue (maxQueue: 1) answers 429 at once to the next request, while the queued one still gets served', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '5s', maxQueue: 1 });
    const held = A.holdNext();
    const first = post(g);
    const stream = await held;
    const queued = post(g, { ...BODY, input: 'queued' });
    await until(() => g.gw.pool.queue.length === 1, 'one request should be queued');

    const started = performance.now();
    const r = await post(g, { ...BODY, input: 'overflow' });
    assert.ok(performance.now() - started < 1000);
    assert.equal(r.status, 429);
    assert.match(errorOf(r).message, /^Too many pending requests/);

    stream.finish();
    await first;
    assert.equal(servedBy(await queued), 'A');
    assert.deepEqual(
      A.requests.map((q) => q.json!.input),
      ['hi', 'queued'],
    );
  });

  it('a client that disconnects while queued leaves the queue, and its request never reaches the upstream', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '5s' });
    const held = A.holdNext();
    const first = post(g, { ...BODY, input: 'first' });
    const stream = await held;

    const quitter = await openExchange(g.url, { ...BODY, input: 'quitter' });
    await until(() => g.gw.pool.queue.length === 1, 'the request should be queued');
    assert.equal(g.gw.inflight, 2);
    quitter.socket.destroy();
    await until(() => g.gw.pool.queue.length === 0, 'the queue should be empty again');
    await until(() => g.gw.inflight === 1, 'only the first request should be in flight');

    stream.finish();
    assert.equal((await first).status, 200);
    const r3 = await post(g, { ...BODY, input: 'third' });
    assert.equal(servedBy(r3), 'A');
    assert.deepEqual(
      A.requests.map((r) => r.json!.input),
      ['first', 'third'],
    );
    const aborted = g.logs.filter((l) => l.msg === 'request' && l.outcome === 'client_abort');
    assert.equal(aborted.length, 1, 'the quitter is logged as a client abort');
    assert.equal(aborted[0]!.status, 499);
  });
  it('one upstream rate limited and the other at its limit: the request waits for the busy one, not 429 for the cooling one', async () => {
    const A = await h.upstream('A');
    const B = await h.upstream('B');
    const g = await h.gateway(
      [
        { name: 'A', url: A.url, priority: 0 },
        { name: 'B', url: B.url, priority: 1, maxConcurrency: 1 },
      ],
      { pool: { queue: { waitTimeout: '5s' } } },
    );
    A.answer(
      jsonError(
        429,
        { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
        { 'retry-after': '30' },
      ),
    );
    assert.equal(servedBy(await post(g)), 'B'); // A is now cooling for 30 s
    const held = B.holdNext();
    const first = post(g, { ...BODY, input: 'first' });
    const stream = await held;

    const waiting = post(g, { ...BODY, input: 'waiting' });
    await until(() => g.gw.pool.queue.length === 1, 'the request should wait for B’s slot');
    stream.finish();
    assert.equal((await first).status, 200);
    const r = await waiting;
    assert.equal(r.status, 200, `got ${r.status} ${r.text()}`);
    assert.equal(servedBy(r), 'B');
    assert.equal(A.requests.length, 1);
  });

  it('an upstream that is both full and rate limited: 429 at once with its reset, not a wait for its slot', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '2s' });
    const held = A.holdNext(5);
    const first = post(g);
    const stream = await held;
    // While its stream is open, the account learns it is rate limited for 20 s (as a plugin's
    // usage signal would cool it, e.g. Codex's usage-window headers).
    g.gw.pool.state.cool('A', undefined, Date.now() + 20_000, 'usage window exhausted', 'rate_limit');

    const started = performance.now();
    const r = await post(g);
    assert.ok(performance.now() - started < 1000, 'waiting for a slot on a cooling account is pointless');
    assert.equal(r.status, 429);
    assert.ok(
      ['19', '20'].includes(String(r.headers['retry-after'])),
      `Retry-After ${r.headers['retry-after']}`,
    );
    assert.match(errorOf(r).message, /rate limited or cooling/);
    assert.equal(g.gw.pool.queue.length, 0);

    stream.finish();
    await first;
  });

  it('shutdown ends a queued request with 503 server_shutting_down, while the open stream drains', async () => {
    const { A, g } = await oneSlot({ waitTimeout: '5s' });
    const held = A.holdNext();
    const first = post(g);
    const stream = await held;
    const queued = post(g, { ...BODY, input: 'queued' });
    await until(() => g.gw.pool.queue.length === 1, 'the request should be queued');

    const closing = g.close(5000);
    const r = await queued;
    assert.equal(r.status, 503);
    assert.equal(errorOf(r).code, 'server_shutting_down');
    assert.equal(g.gw.pool.queue.length, 0);

    stream.finish();
    const r1 = await first;
    assert.equal(r1.status, 200);
    assert.equal(r1.complete, true);
    await deadline(closing, 5000, 'the gateway never finished closing');
    assert.equal(A.requests.length, 1, 'the queued request never reached the upstream');
    assert.equal(g.gw.inflight, 0);
  });
});
