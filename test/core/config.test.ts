import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { LogCapture } from '../helpers/gateway.js';
import { createGateway } from '../../app/gateway.js';

/** The ConfigError that `fn` throws (fails the test if it throws anything else, or nothing). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError, but the config was accepted');
}

async function bootError(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const logs = new LogCapture();
  const loaded = parseConfig(yaml, 'config.yaml', env);
  loaded.config.server.port = 0;
  loaded.config.usage.enabled = false; // no usage database in the repository
  try {
    const gw = await createGateway(loaded, { logDestination: logs });
    await gw.close(0);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected Gateway.create to refuse the config');
}

const issueLines = (err: ConfigError) => err.message.split('\n').slice(1);

describe('config validation', () => {
  it('accepts an empty file and fills in the defaults', () => {
    const { config } = parseConfig('', 'config.yaml', {});
    assert.equal(config.server.host, '127.0.0.1');
    assert.equal(config.server.port, 8787);
    assert.equal(config.server.drainTimeout, 30_000);
    assert.equal(config.proxy.maxAttempts, 3);
    assert.deepEqual(config.auth.keys, []);
    assert.deepEqual(config.plugins, []);
  });

  it('names an unknown key by its path, line and column', () => {
    const err = configError(() =>
      parseConfig('server:\n  host: 127.0.0.1\n  prot: 8080\n', 'config.yaml', {}),
    );
    assert.equal(
      err.message,
      'config.yaml: invalid configuration\n  - config.yaml:3:3 server.prot: unknown key',
    );
    assert.deepEqual(err.issues, [{ path: ['server', 'prot'], line: 3, column: 3, message: 'unknown key' }]);
    assert.equal(err.file, 'config.yaml');
  });

  it('names an unknown top-level key, with the file name it was given', () => {
    const err = configError(() => parseConfig('log:\n  level: info\nlogs: {}\n', '/etc/tapgate/gw.yaml', {}));
    assert.deepEqual(issueLines(err), ['  - /etc/tapgate/gw.yaml:3:1 logs: unknown key']);
  });

  it('names an unknown key nested inside a list item', () => {
    const yaml = 'upstreams:\n  - name: a\n    type: openai\n    timeouts:\n      conect: 1s\n';
    const err = configError(() => parseConfig(yaml, 'config.yaml', {}));
    assert.deepEqual(issueLines(err), ['  - config.yaml:5:7 upstreams[0].timeouts.conect: unknown key']);
  });

  it('reports a value of the wrong type at the value', () => {
    const err = configError(() =>
      parseConfig('server:\n  host:\n    - a\n    - b\nlog:\n  level: loud\n', 'config.yaml', {}),
    );
    assert.equal(err.issues.length, 2);
    assert.deepEqual(err.issues[0], {
      path: ['server', 'host'],
      line: 3,
      column: 5,
      message: 'Invalid input: expected string, received array',
    });
    assert.match(
      issueLines(err)[0]!,
      /^ {2}- config\.yaml:3:5 server\.host: Invalid input: expected string, received array$/,
    );
    assert.match(
      issueLines(err)[1]!,
      /^ {2}- config\.yaml:6:10 log\.level: Invalid option: expected one of "fatal"\|"error"/,
    );
  });

  it('reports a bad duration with the value it got', () => {
    const err = configError(() => parseConfig('server:\n  drainTimeout: soon\n', 'config.yaml', {}));
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:2:17 server.drainTimeout: expected a duration such as 500ms, 30s or 5m, got "soon"',
    ]);
  });

  it('names a missing environment variable and the line that uses it', () => {
    const yaml = 'auth:\n  keys:\n    - name: ci\n      key: ${TAPGATE_MISSING_KEY}\n';
    const err = configError(() => parseConfig(yaml, 'config.yaml', { OTHER: 'x' }));
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:4:12 auth.keys[0].key: environment variable TAPGATE_MISSING_KEY is not set',
    ]);
    // The same file is fine once the variable is set.
    assert.equal(
      parseConfig(yaml, 'config.yaml', { TAPGATE_MISSING_KEY: 'k'.repeat(12) }).config.auth.keys[0]!.key,
      'k'.repeat(12),
    );
  });

  it('treats an empty variable as unset: ${X:-default} falls back, ${X} fails', () => {
    const yaml =
      'server:\n  host: ${GW_HOST:-127.0.0.2}\n  port: ${GW_PORT:-9100}\n  drainTimeout: ${GW_DRAIN:-2s}\n';
    const defaults = parseConfig(yaml, 'config.yaml', { GW_HOST: '' }).config.server;
    assert.equal(defaults.host, '127.0.0.2');
    assert.equal(defaults.port, 9100, 'a substituted number is still a number');
    assert.equal(defaults.drainTimeout, 2000);

    const set = parseConfig(yaml, 'config.yaml', { GW_HOST: '127.0.0.9', GW_PORT: '9200', GW_DRAIN: '500ms' })
      .config.server;
    assert.deepEqual([set.host, set.port, set.drainTimeout], ['127.0.0.9', 9200, 500]);

    const err = configError(() =>
      parseConfig('server:\n  host: ${GW_HOST}\n', 'config.yaml', { GW_HOST: '' }),
    );
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:2:9 server.host: environment variable GW_HOST is not set',
    ]);
  });

  it('reports a YAML syntax error with its line', () => {
    const misaligned = configError(() =>
      parseConfig('server:\n  host: 127.0.0.1\n port: 1\nlog:\n  level: info\n', 'config.yaml', {}),
    );
    assert.deepEqual(issueLines(misaligned), [
      '  - config.yaml:3:1 (root): YAML syntax: All mapping items must start at the same column',
    ]);
    assert.deepEqual(misaligned.issues, [
      {
        path: [],
        line: 3,
        column: 1,
        message: 'YAML syntax: All mapping items must start at the same column',
      },
    ]);

    const tab = configError(() =>
      parseConfig('log:\n  level: info\nserver:\n\thost: x\n', 'config.yaml', {}),
    );
    assert.deepEqual(issueLines(tab), [
      '  - config.yaml:4:1 (root): YAML syntax: Tabs are not allowed as indentation',
    ]);
  });

  it('reports a duplicate key as a YAML error on the second occurrence', () => {
    const err = configError(() => parseConfig('server:\n  host: a\n  host: b\n', 'config.yaml', {}));
    assert.deepEqual(issueLines(err), ['  - config.yaml:3:3 (root): YAML syntax: Map keys must be unique']);
  });

  it('requires a mapping at the top level', () => {
    for (const text of ['- server\n- log\n', 'just a string\n', '42\n']) {
      const err = configError(() => parseConfig(text, 'config.yaml', {}));
      assert.deepEqual(
        issueLines(err),
        ['  - config.yaml:1:1 (root): the top level must be a mapping of keys'],
        text,
      );
    }
  });

  it('skips an empty client key (with a warning) but rejects a too-short one', async () => {
    const short = configError(() =>
      parseConfig('auth:\n  keys:\n    - name: a\n      key: short\n', 'config.yaml', {}),
    );
    assert.deepEqual(issueLines(short), [
      '  - config.yaml:4:12 auth.keys[0].key: a client key needs at least 8 characters',
    ]);

    const yaml =
      'auth:\n  keys:\n    - name: ci\n      key: ${TAPGATE_CI_KEY:-}\n    - name: local\n      key: long-enough-key\n';
    const loaded = parseConfig(yaml, 'config.yaml', {});
    assert.deepEqual(loaded.config.auth.keys, [
      { name: 'ci', key: '' },
      { name: 'local', key: 'long-enough-key' },
    ]);
    loaded.config.server.port = 0;
    loaded.config.usage.enabled = false; // no usage database in the repository
    const logs = new LogCapture();
    const gw = await createGateway(loaded, { logDestination: logs });
    await gw.close(0);
    const warn = logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'client key is empty (its variable is unset): skipped');
    assert.ok(warn, 'the skipped key is logged');
    assert.equal(warn.keyName, 'ci');
    assert.equal(warn.level, 40);

    // Skipped means it does not count as a key: with only an empty key, 0.0.0.0 is refused.
    const onlyEmpty = await bootError(
      'server:\n  host: 0.0.0.0\nauth:\n  keys:\n    - name: ci\n      key: ${TAPGATE_CI_KEY:-}\n',
    );
    assert.deepEqual(
      onlyEmpty.issues.map((i) => i.path),
      [['auth', 'keys']],
    );
  });

  it('reports several problems together in one error', () => {
    const yaml = [
      'server:', //                 1
      '  prot: 80', //              2
      'proxy:', //                  3
      '  maxAttempts: 99', //       4
      'auth:', //                   5
      '  keys:', //                 6
      '    - name: a', //           7
      '      key: ${NOT_SET}', //   8
      '    - name: b', //           9
      '      key: tiny', //         10
      'logging: {}', //             11
    ].join('\n');
    const err = configError(() => parseConfig(yaml, 'config.yaml', {}));
    const lines = issueLines(err);
    assert.equal(lines.length, 5, err.message);
    assert.ok(
      lines.includes('  - config.yaml:8:12 auth.keys[0].key: environment variable NOT_SET is not set'),
      err.message,
    );
    assert.ok(lines.includes('  - config.yaml:2:3 server.prot: unknown key'), err.message);
    assert.ok(
      lines.includes('  - config.yaml:4:16 proxy.maxAttempts: Too big: expected number to be <=20'),
      err.message,
    );
    assert.ok(
      lines.includes('  - config.yaml:10:12 auth.keys[1].key: a client key needs at least 8 characters'),
      err.message,
    );
    assert.ok(lines.includes('  - config.yaml:11:1 logging: unknown key'), err.message);
    // The unset variable is reported once, not again as a too-short key.
    assert.equal(err.issues.filter((i) => i.line === 8).length, 1);
  });
});

describe('config validation at boot (upstream types come from plugins)', () => {
  const openai = (name: string, extra = '') =>
    `  - name: ${name}\n    type: openai\n    baseUrl: http://127.0.0.1:9/v1\n    apiKey: sk-test\n${extra}`;

  it('names an unknown upstream type, its path and line, and the known types', async () => {
    const yaml = `upstreams:\n  - name: a\n    type: anthropic\n    baseUrl: http://127.0.0.1:9\n${openai('b')}`;
    const err = await bootError(yaml);
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:3:11 upstreams[0].type: unknown upstream type "anthropic"; known types: openai',
    ]);
    assert.deepEqual(err.issues[0]!.path, ['upstreams', 0, 'type']);
  });

  it('says no type is known when no plugin provides one', async () => {
    const err = await bootError('upstreams:\n  - name: a\n    type: anthropic\n');
    assert.match(
      err.message,
      /config\.yaml:3:11 upstreams\[0\]\.type: unknown upstream type "anthropic"; known types: \(none/,
    );
  });

  it('is strict per type: a key the type does not know is an unknown key', async () => {
    const yaml = `upstreams:\n${openai('a', '    apiKeys: [x]\n    region: eu\n')}`;
    // The base schema lets type-specific keys through; only the type's plugin knows they are wrong.
    assert.doesNotThrow(() => parseConfig(yaml, 'config.yaml', {}));
    const err = await bootError(yaml);
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:6:5 upstreams[0].apiKeys: unknown key',
      '  - config.yaml:7:5 upstreams[0].region: unknown key',
    ]);
  });

  it('checks the type’s own keys (a bad baseUrl)', async () => {
    const err = await bootError(
      'upstreams:\n  - name: a\n    type: openai\n    baseUrl: ftp://example.com\n    apiKey: k\n',
    );
    assert.deepEqual(issueLines(err), ['  - config.yaml:4:14 upstreams[0].baseUrl: expected an http(s) URL']);
  });

  it('refuses two upstreams with the same name, at the second one', async () => {
    const err = await bootError(`upstreams:\n${openai('main')}${openai('spare')}${openai('main')}`);
    assert.deepEqual(issueLines(err), [
      '  - config.yaml:10:11 upstreams[2].name: duplicate upstream name "main"',
    ]);
  });

  it('reports the problems of several upstreams together', async () => {
    const yaml = `upstreams:\n  - name: a\n    type: nope\n${openai('b', '    colour: red\n')}${openai('b')}`;
    const err = await bootError(yaml);
    assert.deepEqual(
      err.issues.map((i) => [i.path.join('/'), i.line]),
      [
        ['upstreams/0/type', 3],
        ['upstreams/1/colour', 8],
        // b at index 1 was rejected, so index 2 is the first "b" that counts: no duplicate.
      ],
    );
  });
});
