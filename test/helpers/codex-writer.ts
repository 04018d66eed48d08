/**
 * Child process for the crash test: rewrites one file with `writeFileAtomic` in a tight loop,
 * alternating two large contents, until it is killed. Prints "ready" after the first write.
 * Usage: node --import tsx test/helpers/codex-writer.ts <file> <contentA> <contentB> (paths of the two contents)
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../plugins/codex-upstream/atomic-write.js';

const [file, aPath, bPath] = process.argv.slice(2) as [string, string, string];
const contents = [readFileSync(aPath), readFileSync(bPath)];
let i = 0;
for (;;) {
  await writeFileAtomic(file, contents[++i % 2]!);
  if (i === 1) process.stdout.write('ready\n');
}
