/** The queue's keepalive mode (protocol case 12), driven by the real openai SDK. */
import assert from 'node:assert/strict';
import type http from 'node:http';
import OpenAI from 'openai';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

describe('queue keepalive mode (Responses)', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  /** Responses the upstream has not finished yet, by arrival. */
  const open: http.ServerResponse[] = [];
  let arrived: (() => void) | undefined;

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      writeSseHead(res);
      open.push(res);
      arrived?.();
    });
    const yaml = basicConfig(upstream.url)
      .replace(
        '    apiKey: sk-upstream-secret-abcdef',
        '    apiKey: sk-upstream-secret-abcdef\n    maxConcurrency: 1',
      )
      .replace(
        'plugins:',
        'pool:\n  queue: { mode: keepalive, keepaliveInterval: 50ms, waitTimeout: 10s }\nplugins:',
      );
    gateway = await startGateway(yaml);
  });
  after(async () => {
    for (const res of open) res.destroy();
    await gateway.close();
    await upstream.close();
  });

  it('a queued stream gets response.created, then keepalives, then the upstream events renumbered after them', async () => {
    const client = new OpenAI({
      fetch: recordingFetch,
      apiKey: CLIENT_KEY,
      baseURL: gateway.url + '/v1',
      maxRetries: 0,
    });
    // The first request takes the only slot and stays open.
    const firstArrived = new Promise<void>((r) => (arrived = r));
    const first = client.responses.create({ model: 'm', input: 'first', stream: true });
    await firstArrived;

    // The second waits in the queue; its client already reads events.
    const second = await client.responses.create({ model: 'm', input: 'second', stream: true });
    const events: { type: string; sequence_number: number }[] = [];
    const it = second[Symbol.asyncIterator]();
    for (;;) {
      const { value } = await it.next();
      events.push(value as never);
      if (events.filter((e) => e.type === 'keepalive').length === 3) break;
    }
    assert.equal(upstream.requests.length, 1, 'the queued request has not reached the upstream');
    assert.equal(events[0]!.type, 'response.created');
    assert.equal((events[0] as unknown as { response: { status: string } }).response.status, 'queued');

    // Free the slot: the first request completes, the second reaches the upstream.
    const secondArrived = new Promise<void>((r) => (arrived = r));
    for (const f of happyStream('resp_first')) open[0]!.write(f);
    open[0]!.end();
    for await (const _ of await first) void _;
    await secondArrived;
    for (const f of happyStream('resp_second')) open[1]!.write(f);
    open[1]!.end();
    for (;;) {
      const { value, done } = await it.next();
      if (done) break;
      events.push(value as never);
    }

    const types = events.map((e) => e.type);
    assert.equal(types.filter((t) => t === 'response.created').length, 1, 'one response.created only');
    assert.equal(types.at(-1), 'response.completed');
    assert.ok(types.includes('response.output_text.delta'));
    const seqs = events.map((e) => e.sequence_number);
    for (let i = 1; i < seqs.length; i++)
      assert.ok(seqs[i]! > seqs[i - 1]!, `sequence numbers strictly increase: ${seqs.join(',')}`);
    assert.equal(gateway.gw.pool.state.inFlight('up1'), 0);
  });
});
