/**
 * Issue 14: the Responses plugin reads `usage` without parsing the Response (plugins/responses-routes/
 * usage.ts): the last `"usage"` member that is a token count wins. A `metadata` key named usage after
 * the real one, or a tool schema property named usage before it, must not be taken for it; `usage:
 * null` is none; a usage split across chunks is read whole; missing details read as zeros.
 */
import assert from 'node:assert/strict';
import { usageInChunks, usageInText } from '../../plugins/responses-routes/usage.js';

const REAL = {
  input_tokens: 120,
  input_tokens_details: { cached_tokens: 64 },
  output_tokens: 30,
  output_tokens_details: { reasoning_tokens: 12 },
  total_tokens: 150,
};
const WANT = { input: 120, cachedInput: 64, output: 30, reasoning: 12, total: 150 };

function response(extra: Record<string, unknown>): string {
  return JSON.stringify({ id: 'resp_1', object: 'response', status: 'completed', output: [], ...extra });
}

describe('responses-routes: usage from the answer', () => {
  it('a metadata key named usage after the real one is skipped', () => {
    const text = response({
      usage: REAL,
      metadata: { usage: 'billing-team', note: '{"usage":{"input_tokens":1}}' },
    });
    assert.deepEqual(usageInText(text), WANT);
    // Also when metadata's usage is an object that counts nothing.
    assert.deepEqual(usageInText(response({ usage: REAL, metadata: { usage: { team: 'a' } } })), WANT);
  });

  it('a tool schema property named usage before the real one does not matter', () => {
    const tools = [
      {
        type: 'function',
        name: 'report',
        parameters: {
          type: 'object',
          properties: { usage: { type: 'object', properties: { input_tokens: { type: 'integer' } } } },
        },
      },
    ];
    assert.deepEqual(usageInText(response({ tools, usage: REAL })), WANT);
    // With no real usage, the schema's is no count either.
    assert.equal(usageInText(response({ tools, usage: null })), undefined);
  });

  it('usage: null is none; a terminal event wraps it in `response`', () => {
    assert.equal(usageInText(response({ usage: null })), undefined);
    const event = JSON.stringify({
      type: 'response.completed',
      sequence_number: 9,
      response: JSON.parse(response({ usage: REAL })),
    });
    assert.deepEqual(usageInText(event), WANT);
  });

  it('a usage split across chunks, even inside a number or a name, is read whole', () => {
    const bytes = Buffer.from(response({ usage: REAL }));
    const at = bytes.indexOf('"usage"');
    for (const cut of [at + 3, at + 12, bytes.indexOf('64'), bytes.length - 5]) {
      const chunks = [bytes.subarray(0, cut), bytes.subarray(cut)];
      assert.deepEqual(usageInChunks(chunks), WANT, `cut at ${cut}`);
    }
    const single = bytes.length;
    const many = Array.from({ length: Math.ceil(single / 7) }, (_, i) => bytes.subarray(i * 7, i * 7 + 7));
    assert.deepEqual(usageInChunks(many), WANT);
  });

  it('missing details read as zeros; a missing total is input + output', () => {
    assert.deepEqual(usageInText(response({ usage: { input_tokens: 5, output_tokens: 2 } })), {
      input: 5,
      cachedInput: 0,
      output: 2,
      reasoning: 0,
      total: 7,
    });
    assert.deepEqual(
      usageInText(
        response({
          usage: { input_tokens: 5, input_tokens_details: null, output_tokens: -1, total_tokens: 'x' },
        }),
      ),
      { input: 5, cachedInput: 0, output: 0, reasoning: 0, total: 5 },
    );
  });
});
