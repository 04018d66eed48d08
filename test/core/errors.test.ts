/**
 * Errors as data (issue 12): one reader of the "try again in" hint, and immutable errors: the client
 * view (mapped code, scrubbed message and body) is a derived copy, never a change to the error a tap
 * holds.
 */
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { derive, UpstreamHttpError, UpstreamResetError } from '../../core/kernel/errors.js';
import { tryAgainMs } from '../../core/pool/retry-after.js';
import { basicConfig, startGateway, type TestGateway } from '../helpers/gateway.js';
import { postJson } from '../helpers/raw.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
// The same module instance the gateway loads the plugin from.
import { kept } from '../fixtures/plugins/error-keeper.js';

const FIXTURE_CONFIG = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/gateway.yaml');
const UPSTREAM_KEY = 'sk-upstream-secret-abcdef';

describe('errors as data', () => {
  it('tryAgainMs reads "try again in" in seconds or ms, whatever the case', () => {
    assert.equal(tryAgainMs('Rate limit reached. Please try again in 1.5s.'), 1500);
    assert.equal(tryAgainMs('try again in 350ms'), 350);
    assert.equal(tryAgainMs('TRY AGAIN IN 20MS'), 20);
    assert.equal(tryAgainMs('please try again in 2 seconds'), 2000);
    assert.equal(tryAgainMs('try again in 1 second'), 1000);
    assert.equal(tryAgainMs('try again in 6m0s'), undefined);
    assert.equal(tryAgainMs('Rate limit reached'), undefined);
  });

  it('derive() copies an error (class, fields, stack, cause) with the given view; the original is unchanged', () => {
    const e = new UpstreamHttpError(
      401,
      { a: '1' },
      Buffer.from('raw'),
      'secret',
      'invalid_request_error',
      null,
    );
    const d = derive(e, { errorCode: 'mapped', message: 'clean', body: Buffer.from('scrubbed') });
    assert.ok(d instanceof UpstreamHttpError && d !== e);
    assert.deepEqual([d.errorCode, d.message, d.body.toString()], ['mapped', 'clean', 'scrubbed']);
    assert.deepEqual([e.errorCode, e.message, e.body.toString()], [null, 'secret', 'raw']);
    assert.deepEqual(
      [d.status, d.code, d.type, d.phase, d.upstreamHeaders, d.stack],
      [e.status, e.code, e.type, e.phase, e.upstreamHeaders, e.stack],
    );
    const cause = new Error('socket');
    const reset = new UpstreamResetError(undefined, { cause, phase: 'connect', retryAfter: 2 });
    const r = derive(reset, { message: 'x' });
    assert.ok(r instanceof UpstreamResetError);
    assert.deepEqual(
      [r.cause, r.phase, r.retryAfter, r.errorCode, r.message],
      [cause, 'connect', 2, 'upstream_error', 'x'],
    );
    assert.equal(reset.message, 'Upstream connection reset before a response');
  });

  describe('through a gateway', () => {
    let upstream: TestUpstream;
    let tg: TestGateway;

    before(async () => {
      // A 429 whose body is not OpenAI-shaped and quotes the upstream key: the gateway writes its own
      // body, with the mapped code and the key masked.
      upstream = await startUpstream((_req, res) => {
        res.writeHead(429, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ detail: `slow down, key ${UPSTREAM_KEY}` }));
      });
      tg = await startGateway(basicConfig(upstream.url, '  - ./plugins/error-keeper.ts'), {}, FIXTURE_CONFIG);
    });

    after(async () => {
      await tg.close();
      await upstream.close();
    });

    it('the client gets the mapped code and a scrubbed message; the error a tap kept is as it was raised', async () => {
      kept.length = 0;
      const res = await postJson(tg.url, '/v1/responses', { model: 'gpt-test', input: 'hi' });
      assert.equal(res.status, 429);
      const body = JSON.parse(res.body.toString()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'rate_limit_exceeded');
      assert.ok(!body.error.message.includes(UPSTREAM_KEY), body.error.message);
      assert.equal(kept.length, 1);
      const k = kept[0]!;
      assert.ok(k.error instanceof UpstreamHttpError);
      // What the tap saw then is what the error still says.
      assert.deepEqual(
        { errorCode: k.error.errorCode, message: k.error.message, body: k.error.body.toString() },
        { errorCode: k.errorCode, message: k.message, body: k.body },
      );
      assert.equal(k.error.errorCode, null);
      assert.ok(k.error.message.includes(UPSTREAM_KEY));
    });
  });
});
