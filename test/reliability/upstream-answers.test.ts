/**
 * Issue 11, upstream answers that are not what they claim:
 *  - item 3: a large SSE event with CR or CRLF line ends is framed in linear time, byte for byte;
 *  - item 9: on a Responses route, a 2xx that is no answer (a 204 or JSON to a streamed request, an
 *    empty, non-JSON or cut JSON body, a 204/304, a redirect) is an upstream error: failover before
 *    output, else a 502 naming it, logged as an error;
 *  - item 10: a 101 (or another 1xx but 100/103) to a plain request fails at once, not at firstByte;
 *  - item 11: a 10 MB response header is reported as a header overflow, not a reset.
 * Answers that http.ServerResponse cannot produce (1xx, a huge header) come from a raw `net` server.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { bigDelta, renumber } from '../helpers/fault-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { expectGatewayIdle } from '../helpers/handles.js';
import { Harness } from '../helpers/harness.js';
import { poolConfig, SERVED_BY, startScripted, type PoolUpstreamSpec } from '../helpers/pool.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import {
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const h = new Harness();
const MODEL = 'gpt-x';
const JSON_BODY = JSON.stringify(
  responseObject('resp_bad', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
);

/** A loopback server that reads one request, then lets `answer` write raw bytes to the socket. */
async function rawUpstream(
  answer: (socket: net.Socket) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      const head = seen.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(seen.slice(0, head))?.[1] ?? 0);
      if (seen.length < head + 4 + length) return;
      socket.off('data', onData);
      answer(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The raw answers, as written to the socket. */
const RAW = {
  switching: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  switchingNoUpgrade: 'HTTP/1.1 101 Switching Protocols\r\n\r\n',
  processing: 'HTTP/1.1 102 Processing\r\n\r\n',
  hugeHeader: `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-big: ${'a'.repeat(10 * 1024 * 1024)}\r\n\r\n`,
};

/** Upstream handlers (http) for the 2xx/3xx cases. */
function status(code: number, headers: Record<string, string> = {}, body = ''): UpstreamHandler {
  return (_req, res) => {
    res.writeHead(code, headers);
    res.end(body);
  };
}

interface Setup {
  g: TestGateway;
  healthy: Awaited<ReturnType<typeof startScripted>> | undefined;
}

/**
 * A gateway whose preferred upstream for MODEL is `bad` (priority 0), and, with `failover`, a
 * healthy scripted one behind it (priority 1). firstByte stays long: an answer must not wait for it.
 */
async function setup(bad: string, failover: boolean, proxy: Record<string, unknown> = {}): Promise<Setup> {
  const healthy = failover ? h.track(await startScripted('healthy')) : undefined;
  const specs: PoolUpstreamSpec[] = [
    { name: 'bad', url: bad, models: [MODEL], priority: 0, timeouts: { firstByte: '60s', idle: '60s' } },
  ];
  if (healthy !== undefined) specs.push({ name: 'healthy', url: healthy.url, models: [MODEL], priority: 1 });
  const g = h.track(await startGateway(poolConfig(specs, { proxy })));
  return { g, healthy };
}

async function httpBad(handler: UpstreamHandler): Promise<string> {
  return (await h.upstream(handler)).url;
}

async function rawBad(bytes: string): Promise<string> {
  return h.track(await rawUpstream((s) => s.write(bytes))).url;
}

function send(g: TestGateway, stream: boolean, path = '/v1/responses'): Promise<RawResponse> {
  return deadline(postJson(g.url, path, { model: MODEL, stream, input: 'hi' }), 5000, 'an answer');
}

/** A 502 OpenAI-shaped error naming the cause, and the access line: outcome error with the code. */
async function expectUpstreamError(
  g: TestGateway,
  r: RawResponse,
  message: RegExp,
  code = 'UPSTREAM_MALFORMED',
) {
  assert.equal(r.status, 502, r.text());
  assert.equal(r.complete, true);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const error = r.json().error as Record<string, unknown>;
  assert.match(String(error.message), message);
  assert.equal(error.type, 'upstream_error');
  const lines = g.logs.filter((l) => l.msg === 'request failed');
  assert.equal(lines.length, 1, g.rawLogs());
  assert.equal(lines[0]!.status, 502);
  assert.equal((lines[0]!.error as Record<string, unknown>).code, code);
  await expectGatewayIdle(g.gw);
}

/** Served in full by the healthy upstream, logged as a success. */
async function expectFailedOver(g: TestGateway, r: RawResponse, stream: boolean) {
  assert.equal(r.status, 200, r.text());
  assert.equal(r.headers[SERVED_BY], 'healthy');
  if (stream) assert.equal(r.text(), happyStream('resp_healthy').join(''));
  assert.deepEqual(
    g.logs.filter((l) => l.msg === 'request failed'),
    [],
  );
  await expectGatewayIdle(g.gw);
}

describe('upstream answers that are not what they claim (issue 11)', function () {
  this.timeout(15_000);
  afterEach(() => h.cleanup());

  describe('item 9: a 2xx that is no answer, on a Responses route', () => {
    const cases: { name: string; stream: boolean; handler: UpstreamHandler; message: RegExp }[] = [
      {
        name: 'a 204 to a streamed request',
        stream: true,
        handler: status(204),
        message: /^upstream answered a streamed request with HTTP 204 and no event stream$/,
      },
      {
        name: 'a 200 application/json with an empty body to a streamed request',
        stream: true,
        handler: status(200, { 'content-type': 'application/json' }),
        message: /^upstream answered a streamed request with application\/json, not an event stream$/,
      },
      {
        name: 'a 200 with no content type and a non-JSON body',
        stream: false,
        handler: (_req, res) => void res.end('OK, all good'),
        message: /^upstream answered HTTP 200 with a body that is not JSON$/,
      },
      {
        name: 'a 200 application/json with an empty body',
        stream: false,
        handler: status(200, { 'content-type': 'application/json' }),
        message: /^upstream answered HTTP 200 with an empty body/,
      },
      {
        name: 'a 204 to a JSON request',
        stream: false,
        handler: status(204),
        message: /^upstream answered HTTP 204 with an empty body/,
      },
      {
        name: 'a 304 to a JSON request',
        stream: false,
        handler: status(304),
        message: /^upstream answered HTTP 304 with an empty body/,
      },
      {
        name: 'a 302 redirect',
        stream: false,
        handler: status(302, { location: 'http://elsewhere.invalid/secret-path' }),
        message: /^upstream answered HTTP 302 \(a redirect\), which the gateway does not follow$/,
      },
    ];
    for (const c of cases) {
      it(`${c.name} → 502 naming it, logged as an error`, async () => {
        const { g } = await setup(await httpBad(c.handler), false);
        const r = await send(g, c.stream);
        await expectUpstreamError(g, r, c.message);
        assert.ok(!r.text().includes('elsewhere.invalid') && !r.text().includes('OK, all good'));
      });
      it(`${c.name}, with a healthy upstream left → failover, served in full`, async () => {
        const { g } = await setup(await httpBad(c.handler), true);
        await expectFailedOver(g, await send(g, c.stream), c.stream);
      });
    }

    it('a JSON answer cut mid-body → failover, none of the cut body reaches the client', async () => {
      const bad = await httpBad(async (req, res) => {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': String(JSON_BODY.length),
        });
        await new Promise<void>((r) => res.write(JSON_BODY.slice(0, 100), () => r()));
        req.socket.resetAndDestroy();
      });
      const { g } = await setup(bad, true);
      const r = await send(g, false);
      await expectFailedOver(g, r, false);
      assert.ok(!r.text().includes('resp_bad'));
    });

    it('a whole JSON answer is sent with its length, chunked upstream or not', async () => {
      const bad = await httpBad(async (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        for (const piece of [JSON_BODY.slice(0, 50), JSON_BODY.slice(50, 400), JSON_BODY.slice(400)])
          await new Promise<void>((r) => res.write(piece, () => r()));
        res.end();
      });
      const { g } = await setup(bad, false);
      const r = await send(g, false);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(Buffer.byteLength(JSON_BODY)));
      assert.equal(r.headers['transfer-encoding'], undefined);
      assert.equal(r.text(), JSON_BODY);
      assert.deepEqual(
        g.logs.filter((l) => l.msg === 'request failed'),
        [],
      );
    });

    it('a JSON answer over proxy.maxEventBytes → 502 UPSTREAM_FRAME_TOO_LARGE, nothing forwarded', async () => {
      const big = `{"x":"${'y'.repeat(2 * 1024 * 1024)}"}`;
      const { g } = await setup(
        await httpBad(status(200, { 'content-type': 'application/json' }, big)),
        false,
        {
          maxEventBytes: '1mb',
        },
      );
      const r = await send(g, false);
      await expectUpstreamError(
        g,
        r,
        /^upstream JSON answer over 1048576 bytes$/,
        'UPSTREAM_FRAME_TOO_LARGE',
      );
    });

    it('on /backend-api/codex/responses too: a 204 to a streamed request → 502', async () => {
      const { g } = await setup(await httpBad(status(204)), false);
      const r = await send(g, true, '/backend-api/codex/responses');
      await expectUpstreamError(g, r, /with HTTP 204 and no event stream/);
    });

    it('on /v1/responses/compact (unary): JSON answers a streamed request; a 204 is still an error', async () => {
      const json = status(200, { 'content-type': 'application/json' }, JSON_BODY);
      const ok = await setup(await httpBad(json), false);
      const r = await send(ok.g, true, '/v1/responses/compact');
      assert.equal(r.status, 200, r.text());
      assert.equal(r.text(), JSON_BODY);
      const { g } = await setup(await httpBad(status(204)), false);
      await expectUpstreamError(
        g,
        await send(g, true, '/v1/responses/compact'),
        /HTTP 204 with an empty body/,
      );
    });

    it('a route without a JSON body keeps the pass-through: a 204 reaches the client as a 204', async () => {
      const up = await httpBad(status(204));
      const plugin = new URL('../fixtures/plugins/catch-all-route.js', import.meta.url).pathname;
      const yaml = poolConfig([{ name: 'bad', url: up }]).replace('plugins:\n', `plugins:\n  - ${plugin}\n`);
      const g = h.track(await startGateway(yaml));
      const r = await deadline(postJson(g.url, '/raw/thing', { stream: true }), 5000, 'an answer');
      assert.equal(r.status, 204);
      await expectGatewayIdle(g.gw);
    });
  });

  describe('item 10: an interim status that no answer follows', () => {
    const cases = [
      [
        'a 101 Switching Protocols',
        RAW.switching,
        /^upstream answered HTTP 101 Switching Protocols to a plain request$/,
      ],
      [
        'a 101 without an Upgrade header',
        RAW.switchingNoUpgrade,
        /^upstream answered HTTP 101 Switching Protocols/,
      ],
      ['a 102 Processing', RAW.processing, /^upstream answered HTTP 102 Processing, an interim status/],
    ] as const;
    for (const [name, bytes, message] of cases) {
      for (const stream of [true, false])
        it(`${name}, stream:${stream} → 502 at once (firstByte is 60 s)`, async () => {
          const { g } = await setup(await rawBad(bytes), false);
          const t0 = performance.now();
          const r = await send(g, stream);
          assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
          await expectUpstreamError(g, r, message);
        });
      it(`${name}, with a healthy upstream left → failover`, async () => {
        const { g } = await setup(await rawBad(bytes), true);
        await expectFailedOver(g, await send(g, true), true);
      });
    }

    it('a 103 Early Hints before the answer is not an error', async () => {
      const bad = await rawBad(
        'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n' +
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${JSON_BODY.length}\r\n\r\n${JSON_BODY}`,
      );
      const { g } = await setup(bad, false);
      const r = await send(g, false);
      assert.equal(r.status, 200, r.text());
      assert.equal(r.text(), JSON_BODY);
    });
  });

  describe('item 11: a 10 MB response header', () => {
    for (const path of ['/v1/responses', '/backend-api/codex/responses'])
      it(`on ${path} → 502 naming the header overflow and the limit, not a reset`, async () => {
        const { g } = await setup(await rawBad(RAW.hugeHeader), false);
        const r = await send(g, true, path);
        await expectUpstreamError(g, r, /^upstream response headers are larger than the 16 KB limit$/);
      });

    it('with a healthy upstream left → failover', async () => {
      const { g } = await setup(await rawBad(RAW.hugeHeader), true);
      await expectFailedOver(g, await send(g, true), true);
    });

    it('a response the HTTP parser refuses → 502 naming the parser error', async () => {
      const { g } = await setup(await rawBad('HELLO THERE\r\n\r\n'), false);
      await expectUpstreamError(
        g,
        await send(g, false),
        /^upstream sent a malformed HTTP response \(HPE_[A-Z_]+\)$/,
      );
    });
  });

  describe('item 3: an 8 MB event with CR or CRLF line ends', () => {
    for (const [name, eol] of [
      ['CR', '\r'],
      ['CRLF', '\r\n'],
    ] as const)
      it(`${name}: relayed byte for byte in well under the old seconds; a concurrent request is served`, async () => {
        const frames = happyStream('resp_big').map((f) => f.replace(/\n/g, eol));
        // One delta event of 8 MB (a valid one: the Responses plugin reads it) after the first 4 frames.
        const big = bigDelta(8 * 1024 * 1024, 4).replace(/\n/g, eol);
        const body = Buffer.from(frames.slice(0, 4).join('') + big + renumber(frames.slice(4), 5).join(''));
        const up = h.track(
          await startUpstream((_req, res: http.ServerResponse, recorded) => {
            writeSseHead(res);
            res.end(recorded.json?.input === 'small' ? frames.join('') : body);
          }),
        );
        const g = h.track(
          await startGateway(
            poolConfig([{ name: 'up', url: up.url }], {
              proxy: { hold: { enabled: false } },
            }),
          ),
        );
        const arrived = up.nextRequest();
        const t0 = performance.now();
        const bigDone = postJson(g.url, '/v1/responses', { model: MODEL, stream: true, input: 'big' }).then(
          (r) => ({
            r,
            ms: performance.now() - t0,
          }),
        );
        // The second request starts while the upstream sends the 8 MB event.
        await arrived;
        const t1 = performance.now();
        const small = await postJson(g.url, '/v1/responses', { model: MODEL, stream: true, input: 'small' });
        const smallMs = performance.now() - t1;
        const { r, ms } = await deadline(bigDone, 14_000, 'the 8 MB stream');
        assert.equal(r.status, 200);
        assert.ok(r.body.equals(body), 'the 8 MB stream differs from what the upstream sent');
        assert.ok(ms < 2000, `8 MB ${name} event took ${ms.toFixed(0)} ms`);
        assert.equal(small.status, 200);
        assert.ok(smallMs < 1500, `a concurrent request took ${smallMs.toFixed(0)} ms`);
        await expectGatewayIdle(g.gw);
      });
  });
});
