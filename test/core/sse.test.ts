import assert from 'node:assert/strict';
import { parseFrame, SseFramer } from '../../core/proxy/sse.js';

function frames(chunks: string[]): string[] {
  const f = new SseFramer(1 << 20);
  const out: string[] = [];
  for (const c of chunks) f.push(Buffer.from(c), { frame: (s) => out.push(s) });
  return out;
}

describe('SSE framing', () => {
  it('splits LF frames across any chunk boundary and keeps their text', () => {
    const text = 'event: a\ndata: {"x":1}\n\nevent: b\ndata: {"y":2}\n\n';
    for (let i = 1; i < text.length; i++) {
      assert.deepEqual(
        frames([text.slice(0, i), text.slice(i)]),
        ['event: a\ndata: {"x":1}\n\n', 'event: b\ndata: {"y":2}\n\n'],
        `split at ${i}`,
      );
    }
  });

  it('handles CRLF and CR line ends, including a CRLF split between chunks', () => {
    const text = 'data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n';
    for (let i = 1; i < text.length; i++) {
      const got = frames([text.slice(0, i), text.slice(i)]).map((f) => parseFrame(f)?.data);
      assert.deepEqual(got, ['1', '2', '3'], `split at ${i}`);
    }
  });

  it('a CR that ends the body ends its frame: rest() hands the frame over, nothing is left', () => {
    const f = new SseFramer(1 << 20);
    const out: string[] = [];
    const sink = { frame: (s: string) => out.push(s) };
    f.push(Buffer.from('data: 1\r\rdata: 2\r'), sink);
    f.push(Buffer.from('\r'), sink);
    assert.deepEqual(out, ['data: 1\r\r']);
    assert.equal(f.rest(sink), '');
    assert.deepEqual(out, ['data: 1\r\r', 'data: 2\r\r']);
  });

  it('keeps the LF of a CRLF split between chunks in the frame it ends a line of', () => {
    const text = 'event: a\r\ndata: x\r\n\r\n';
    for (let i = 1; i < text.length; i++)
      for (let j = i + 1; j < text.length; j++)
        assert.deepEqual(frames([text.slice(0, i), text.slice(i, j), text.slice(j)]), [text], `${i},${j}`);
  });

  it('parses fields: event, multi-line data, comments, optional space', () => {
    assert.deepEqual(parseFrame('event: x\ndata: a\ndata:b\n\n'), {
      event: 'x',
      data: 'a\nb',
      raw: 'event: x\ndata: a\ndata:b\n\n',
    });
    assert.equal(parseFrame(': ping\n\n'), undefined);
    assert.equal(parseFrame('event: ping\n\n')?.data, '');
  });

  it('refuses a frame over the limit', () => {
    const f = new SseFramer(10);
    assert.throws(() => f.push(Buffer.from('data: 0123456789abcdef'), { frame: () => {} }), /over 10/);
  });

  it('does not split a multi-byte UTF-8 character across chunks', () => {
    const bytes = Buffer.from('data: héllo ✓\n\n');
    for (let i = 1; i < bytes.length; i++) {
      const f = new SseFramer(1 << 20);
      const out: string[] = [];
      f.push(bytes.subarray(0, i), { frame: (s) => out.push(s) });
      f.push(bytes.subarray(i), { frame: (s) => out.push(s) });
      assert.deepEqual(out, ['data: héllo ✓\n\n']);
    }
  });
});
