/**
 * Root hooks (loaded by .mocharc.json `require`): after the whole suite, no configured secret may
 * appear in anything the gateway said to a client, a log, a dashboard viewer or a terminal.
 */
import assert from 'node:assert/strict';
import { findLeaks, setCurrentTest } from '../helpers/secret-scan.js';

export const mochaHooks = {
  beforeEach(this: Mocha.Context): void {
    setCurrentTest(this.currentTest?.fullTitle() ?? '(unknown)');
  },
  afterAll(): void {
    const { leaks, scannedOutputs, scannedBytes, secrets } = findLeaks();
    // The scan must have had something to scan, or it proves nothing.
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
