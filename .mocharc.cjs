// Mocha config. The default spec (every test file) applies only when the command line names no spec:
// mocha merges a config `spec` with the files given, so `npx mocha test/core/sse.test.ts` would
// otherwise run the whole suite. `npx mocha` and `npx mocha --grep x` still run (or filter) it all.
'use strict';
// Mocha's own table of which options take a value, so `--grep foo` is not taken for a spec `foo`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { types, aliases } = require('mocha/lib/cli/run-option-metadata.cjs');

const valued = new Set([...types.array, ...types.number, ...types.string]);
for (const name of [...valued]) for (const alias of aliases[name] ?? []) valued.add(alias);

/** True when argv names a spec: a positional argument, or `--spec`. */
function namesSpec(argv) {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return i + 1 < argv.length;
    if (!arg.startsWith('-')) return true;
    if (arg.includes('=')) {
      if (arg.replace(/^-+/, '').split('=')[0] === 'spec') return true;
      continue;
    }
    const name = arg.replace(/^-+/, '');
    if (name === 'spec') return true;
    // A short-flag cluster (`-bg x`) takes a value when its last flag does.
    const last = arg.startsWith('--') ? name : name.slice(-1);
    if (valued.has(last)) i++;
  }
  return false;
}

module.exports = {
  'node-option': ['import=tsx', 'no-experimental-require-module', 'expose-gc'],
  ...(namesSpec(process.argv.slice(2)) ? {} : { spec: ['test/**/*.test.ts'] }),
  extension: ['ts'],
  timeout: 15000,
  exit: false,
  reporter: 'spec',
  require: ['test/setup/secret-scan.ts'],
};
