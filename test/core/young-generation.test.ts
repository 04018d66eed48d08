/**
 * Issue 17 (memory): app/young-generation.js keeps V8's young generation at the cap the tapgate
 * command sets (2 × 4 MB) under an allocation load that would grow it to 2 × 16 MB, and leaves it
 * alone when node's command line sizes it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/cli.js';

/** Allocates in slices (the cap is applied between them, after GCs), then prints new space in MB. */
const SCRIPT = `
import v8 from 'node:v8';
import { setImmediate as tick } from 'node:timers/promises';
const { capYoungGeneration } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'app', 'young-generation.js')).href)});
capYoungGeneration(8);
let keep = [];
for (let slice = 0; slice < 200; slice++) {
  for (let i = 0; i < 20000; i++) {
    keep.push({ i, s: 'x' + i });
    if (keep.length > 40000) keep = [];
  }
  await tick();
}
const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
process.stdout.write(String(space.space_size / 1048576));
`;

function newSpaceMb(nodeFlags: string[]): number {
  const out = execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', SCRIPT], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return Number(out);
}

describe('the young generation cap (app/young-generation.js)', () => {
  it('holds it at 8 MB; sized on node’s command line, V8 grows it past that under the same load', () => {
    assert.equal(newSpaceMb([]), 8);
    assert.ok(newSpaceMb(['--semi-space-growth-factor=2', '--max-semi-space-size=16']) > 8);
  });
});
