/**
 * `auth.keys[].limits` in config.yaml: a bad value, an unknown key, an empty model list or a limited
 * key sharing its name is an error that names the key path and its line, like every other key, and
 * through the real CLI it is one clear line on stderr (no stack, no key text).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { killStrayClis, runCli } from '../helpers/cli.js';

const KEY_A = 'sk-limits-config-key-a-123';
const KEY_B = 'sk-limits-config-key-b-456';

/** Two keys; `limits` is YAML for the second key's `limits:` block (indented under it). */
function yaml(limits: string, secondName = 'ci'): string {
  return [
    'auth:', //                        1
    '  keys:', //                      2
    '    - name: local', //            3
    `      key: ${KEY_A}`, //          4
    `    - name: ${secondName}`, //    5
    `      key: ${KEY_B}`, //          6
    '      limits:', //                7
    ...limits.split('\n').map((l) => '        ' + l), // 8…
    '',
  ].join('\n');
}

function issues(text: string): string[] {
  try {
    parseConfig(text, 'config.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').slice(1);
  }
  return assert.fail('the config was accepted');
}

describe('config: auth.keys[].limits', () => {
  afterEach(() => killStrayClis());

  it('accepts every kind, as numbers or ${VAR} strings', () => {
    const loaded = parseConfig(
      yaml(
        'requestsPerMinute: 60\ntokensPerMinute: "40000"\ntokensPerDay: 1000000\ntokensPerMonth: 20000000\nconcurrency: 4\nmodels: [gpt-5*, o3]',
      ),
      'config.yaml',
      {},
    );
    assert.deepEqual(loaded.config.auth.keys[1]!.limits, {
      requestsPerMinute: 60,
      tokensPerMinute: 40_000,
      tokensPerDay: 1_000_000,
      tokensPerMonth: 20_000_000,
      concurrency: 4,
      models: ['gpt-5*', 'o3'],
    });
    assert.equal(loaded.config.auth.keys[0]!.limits, undefined);
  });

  it('names the key path and line of a bad value, an unknown key and an empty model list', () => {
    assert.deepEqual(issues(yaml('requestsPerMinute: 10\ntokensPerDay: -5')), [
      '  - config.yaml:9:23 auth.keys[1].limits.tokensPerDay: Too small: expected number to be >=1',
    ]);
    assert.deepEqual(issues(yaml('concurrency: 0')), [
      '  - config.yaml:8:22 auth.keys[1].limits.concurrency: Too small: expected number to be >=1',
    ]);
    assert.deepEqual(issues(yaml('tokensPerWeek: 5')), [
      '  - config.yaml:8:9 auth.keys[1].limits.tokensPerWeek: unknown key',
    ]);
    assert.deepEqual(issues(yaml('models: []')), [
      '  - config.yaml:8:17 auth.keys[1].limits.models: list at least one model, or leave `models` out to allow any',
    ]);
  });

  it('a limited key needs a name of its own', () => {
    assert.deepEqual(issues(yaml('requestsPerMinute: 5', 'local')), [
      '  - config.yaml:5:13 auth.keys[1].name: duplicate key name "local": limits count per name, so a key with limits needs a name of its own',
    ]);
  });

  it('the real CLI: exit 1 with one located line, no stack and no key text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapgate-limits-config-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, yaml('tokensPerDay: lots'));
      const cli = runCli(['--config', file]);
      const { code } = await cli.closed;
      assert.equal(code, 1);
      const stderr = cli.stderr();
      assert.match(stderr, /config\.yaml:8:23 auth\.keys\[1\]\.limits\.tokensPerDay: Invalid input/);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
      assert.ok(!stderr.includes(KEY_B) && !stderr.includes(KEY_A));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
