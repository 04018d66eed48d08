/**
 * Micro-bench of the SSE framer alone (no sockets): one large event per line-ending style, fed in
 * 64 KB chunks as a socket delivers it, and the throughput of a stream of typical small LF events.
 *
 *   npx tsx bench/sse-framer.ts
 */
import { SseFramer } from '../core/proxy/sse.js';

const CHUNK = 64 * 1024;
const sink = { frames: 0, frame: () => void sink.frames++ };

/** One event of about `mb` MB whose data has many short lines, ended by `eol`. */
function bigEvent(mb: number, eol: string): Buffer {
  const line = 'data: ' + 'x'.repeat(70) + eol;
  const lines = Math.ceil((mb * 1024 * 1024) / line.length);
  return Buffer.from('event: big' + eol + line.repeat(lines) + eol);
}

function feed(bytes: Buffer, chunk: number): number {
  const framer = new SseFramer(64 * 1024 * 1024);
  const t0 = performance.now();
  for (let at = 0; at < bytes.length; at += chunk) framer.push(bytes.subarray(at, at + chunk), sink);
  return performance.now() - t0;
}

for (const mb of [8, 15])
  for (const [name, eol] of [
    ['LF', '\n'],
    ['CR', '\r'],
    ['CRLF', '\r\n'],
  ] as const) {
    const ms = feed(bigEvent(mb, eol), CHUNK);
    console.log(`${mb} MB single event, ${name.padEnd(4)}: ${ms.toFixed(0)} ms`);
  }

// 100k typical events (~200 bytes each), one event per chunk as the upstream writes them.
const small = Buffer.from(
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":5,' +
    '"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello there, how are you"}\n\n',
);
const many = Buffer.concat(Array.from({ length: 16 }, () => small));
const N = 100_000;

/** The best of `rounds` timed runs of `run`: the machine is shared, the minimum is the framer's cost. */
function best(rounds: number, run: () => void): number {
  let min = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    run();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

const framer = new SseFramer(1 << 20);
const one = best(7, () => {
  for (let i = 0; i < N; i++) framer.push(small, sink);
});
console.log(`${N} small LF events, one per chunk: ${one.toFixed(0)} ms (best of 7)`);
const cut = best(7, () => {
  for (let i = 0; i < N / 16; i++) {
    framer.push(many.subarray(0, 1000), sink);
    framer.push(many.subarray(1000), sink);
  }
});
console.log(`${N} small LF events, 16 per chunk cut in 2: ${cut.toFixed(0)} ms (best of 7)`);
