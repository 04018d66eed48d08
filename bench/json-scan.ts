/**
 * What the pre-parse scan (core/proxy/json-bounds.ts) costs on ordinary Responses bodies, next to
 * toString + JSON.parse of the same bytes: `node --import tsx bench/json-scan.ts`. Never in npm test.
 */
import { scanJson } from '../core/proxy/json-bounds.js';

/** A Codex-like body of about `kb` KB: instructions, 8 function tools, a mixed input history. */
function realistic(kb: number): Buffer {
  const tools = Array.from({ length: 8 }, (_, i) => ({
    type: 'function',
    name: `tool_${i}`,
    description: 'Does a thing with the workspace, carefully. '.repeat(3),
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'file path' },
        line: { type: 'integer' },
        flags: { type: 'array', items: { type: 'string' } },
      },
      required: ['path'],
      additionalProperties: false,
    },
    strict: true,
  }));
  const input: unknown[] = [];
  const body = {
    model: 'gpt-5-codex',
    instructions: 'You are a coding agent. Follow the rules.\n'.repeat(40),
    tools,
    input,
    stream: true,
    store: false,
    prompt_cache_key: 'abc-123',
    reasoning: { effort: 'medium', summary: 'auto' },
  };
  for (let i = 0; JSON.stringify(body).length < kb * 1024; i++) {
    const text = `Please fix the "bug" in src/app.ts\nline ${i} \\ with escapes \u00e9`;
    input.push(
      i % 3 === 0
        ? { type: 'message', role: 'user', content: [{ type: 'input_text', text }] }
        : i % 3 === 1
          ? {
              type: 'function_call',
              name: 'tool_1',
              arguments: `{"path":"a.ts","line":${i}}`,
              call_id: `c${i}`,
            }
          : { type: 'function_call_output', call_id: `c${i}`, output: 'const x = 1;\n'.repeat(20) },
    );
  }
  return Buffer.from(JSON.stringify(body));
}

function perRun(fn: () => void, reps: number): number {
  for (let i = 0; i < reps; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return ((performance.now() - t0) / reps) * 1000;
}

for (const kb of [5, 10, 50, 1024]) {
  const b = realistic(kb);
  const reps = Math.max(20, Math.floor(20_000 / kb));
  const scan = perRun(() => scanJson(b, 128, 1_000_000), reps);
  const parse = perRun(() => JSON.parse(b.toString('utf8')), reps);
  const size = b.length / 1024;
  console.log(
    `${size.toFixed(0).padStart(5)} KB: scan ${scan.toFixed(1)} µs (${(scan / size).toFixed(2)} µs/KB); ` +
      `toString + JSON.parse ${parse.toFixed(1)} µs (${(parse / size).toFixed(2)} µs/KB)`,
  );
}
const text = Buffer.from(JSON.stringify({ model: 'x', input: 'x'.repeat(16 * 1024 * 1024) }));
console.log(`16 MB, one string: scan ${(perRun(() => scanJson(text, 128, 1e6), 5) / 1000).toFixed(1)} ms`);
const tiny = Buffer.from(`{"a":[${'{},'.repeat(5_000_000)}{}]}`);
console.log(
  `16 MB of {}: scan to the end ${(perRun(() => scanJson(tiny, 128, 1e8), 3) / 1000).toFixed(0)} ms`,
);
