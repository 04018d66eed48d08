/**
 * Property: however the upstream's bytes are cut into chunks (and however slowly they come), the
 * client sees the same bytes. Covers the framer, the pre-output hold and the exact-bytes fast path,
 * on both transports (`proxy.transport`).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type http from 'node:http';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { proxyConfig } from '../helpers/proxy-config.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

/** The happy stream with a comment, multi-byte text and a multi-line data field, LF line ends. */
const LF_TEXT = happyStream()
  .map((f, i) => (i === 4 ? f.replace('Hello!', 'Héllo ✓ — ok') : f))
  .join('')
  .replace('event: response.output_item.added', ': keep-alive comment\n\nevent: response.output_item.added');

/** The same stream with LF and CRLF frames mixed, all CR, or all CRLF. */
const STREAMS: [string, Buffer][] = [
  [
    'mixed LF and CRLF',
    Buffer.from(
      happyStream()
        .map((f, i) => (i === 4 ? f.replace('Hello!', 'Héllo ✓ — ok') : f))
        .map((f, i) => (i === 3 ? f.replace(/\n/g, '\r\n') : f))
        .join('')
        .replace(
          'event: response.output_item.added',
          ': keep-alive comment\n\nevent: response.output_item.added',
        ),
    ),
  ],
  ['CR only', Buffer.from(LF_TEXT.replace(/\n/g, '\r'))],
  ['CRLF only', Buffer.from(LF_TEXT.replace(/\n/g, '\r\n'))],
];

for (const transport of ['undici', 'http-proxy-3'])
  describe(`SSE relay under any chunking (property, ${transport})`, () => {
    let upstream: TestUpstream;
    let gateway: TestGateway;
    let cuts: number[] = [];
    let STREAM = STREAMS[0]![1];

    before(async () => {
      upstream = await startUpstream(async (_req, res: http.ServerResponse) => {
        writeSseHead(res);
        let at = 0;
        for (const cut of [...cuts, STREAM.length]) {
          // Each piece is flushed before the next, so the gateway really sees these boundaries.
          await new Promise<void>((r) => res.write(STREAM.subarray(at, cut), () => setImmediate(r)));
          at = cut;
        }
        res.end();
      });
      gateway = await startGateway(proxyConfig([upstream.url], { proxy: { transport } }));
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    async function through(): Promise<Buffer> {
      const res = await fetch(`${gateway.url}/v1/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', input: 'x', stream: true }),
      });
      assert.equal(res.status, 200);
      return Buffer.from(await res.arrayBuffer());
    }

    for (const [name, bytes] of STREAMS)
      it(`the client receives the upstream bytes unchanged, for any split points (${name})`, async () => {
        STREAM = bytes;
        await fc.assert(
          fc.asyncProperty(
            fc.uniqueArray(fc.integer({ min: 1, max: STREAM.length - 1 }), { maxLength: 12 }),
            async (points) => {
              cuts = [...points].sort((a, b) => a - b);
              const got = await through();
              assert.equal(got.toString('utf8'), STREAM.toString('utf8'), `cuts at ${cuts.join(',')}`);
            },
          ),
          { numRuns: 60 },
        );
      });
  });
