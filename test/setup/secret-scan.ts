/**
 * Root hooks (loaded by .mocharc.cjs `require`): after the run, no configured secret may appear in
 * anything the gateway said to a client, a log, a dashboard viewer or a terminal. Any run scans what
 * it recorded; only a whole-suite run must also have recorded enough for the scan to prove something
 * (a single file or a `--grep` run may rightly record little or nothing).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findLeaks, setCurrentTest } from '../helpers/secret-scan.js';

const TEST_DIR = fileURLToPath(new URL('..', import.meta.url));

/** Every test file under test/, as absolute paths. */
function allTestFiles(): Set<string> {
  const files = readdirSync(TEST_DIR, { recursive: true, encoding: 'utf8' });
  return new Set(files.filter((f) => f.endsWith('.test.ts')).map((f) => TEST_DIR + f));
}

/** True when this run loaded every test file and ran every test it loaded (no `--grep`, no `.only`). */
function wholeSuite(root: Mocha.Suite): boolean {
  const loaded = new Set<string>();
  let filtered = false;
  const walk = (suite: Mocha.Suite): void => {
    if (suite.file !== undefined) loaded.add(suite.file);
    for (const t of suite.tests) if (t.state === undefined && !t.isPending()) filtered = true;
    for (const s of suite.suites) walk(s);
  };
  walk(root);
  return !filtered && [...allTestFiles()].every((f) => loaded.has(f));
}

export const mochaHooks = {
  beforeEach(this: Mocha.Context): void {
    setCurrentTest(this.currentTest?.fullTitle() ?? '(unknown)');
  },
  afterAll(this: Mocha.Context): void {
    const { leaks, scannedOutputs, scannedBytes, secrets } = findLeaks();
    const root = this.test?.parent;
    // The whole suite's scan must have had something to scan, or it proves nothing.
    if (root !== undefined && wholeSuite(root))
      assert.ok(
        secrets >= 5 && scannedOutputs > 100,
        `secret scan saw too little: ${secrets} secrets, ${scannedOutputs} outputs`,
      );
    if (leaks.length > 0) {
      const lines = leaks.slice(0, 20).map((l) => `- ${l.secret} in ${l.kind} of "${l.test}": …${l.excerpt}`);
      assert.fail(`secrets leaked (${leaks.length}):\n${lines.join('\n')}`);
    }
    console.log(
      `  secret scan: ${secrets} secrets × ${scannedOutputs} outputs (${(scannedBytes / 1e6).toFixed(1)} MB): no leak`,
    );
  },
};
