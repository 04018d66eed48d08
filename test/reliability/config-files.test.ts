/**
 * Config files that used to hang, crash or boot into a broken gateway (issue 11, items 16 and 17),
 * through the real CLI: each now exits 1 at once with a located error (file, line, column, key path)
 * and no stack trace. Durations Node cannot run, a timeout pair Node refuses, a YAML alias bomb, a
 * FIFO, a device, an oversized file, a byte that is not UTF-8, and credentials that cannot be sent in
 * an HTTP header.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../core/config/config.js';
import { MAX_DURATION_MS } from '../../core/config/units.js';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { deadline } from '../helpers/raw.js';

const NOWHERE = 'http://127.0.0.1:9/v1';

interface Case {
  name: string;
  /** The config file to start with (written under `dir`). */
  file(dir: string): string;
  /** Each must appear in stderr. */
  expect: RegExp[];
}

function yamlFile(dir: string, name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A valid config with `server:` lines and one openai upstream whose apiKey is `apiKey` (raw YAML). */
function withServer(server: string[], apiKey = 'sk-config-files-upstream-key'): string {
  return [
    'server:',
    '  host: 127.0.0.1',
    '  port: 0',
    ...server.map((l) => '  ' + l),
    'upstreams:',
    '  - name: up1',
    '    type: openai',
    `    baseUrl: ${NOWHERE}`,
    `    apiKey: ${apiKey}`,
    'plugins: [responses-routes]',
    '',
  ].join('\n');
}

const CASES: Case[] = [
  {
    name: 'durations above 2^31-1 ms (600h idle, firstByte and drainTimeout)',
    file: (dir) =>
      yamlFile(
        dir,
        'long.yaml',
        withServer(['drainTimeout: 600h']).replace(
          'upstreams:',
          'proxy:\n  timeouts:\n    idle: 600h\n    firstByte: 600h\nupstreams:',
        ),
      ),
    expect: [
      /long\.yaml:4:17 server\.drainTimeout: "600h" is longer than the longest timer Node can run/,
      /long\.yaml:7:11 proxy\.timeouts\.idle: "600h"/,
      /long\.yaml:8:16 proxy\.timeouts\.firstByte: "600h"/,
    ],
  },
  {
    name: 'requestTimeout shorter than headersTimeout',
    file: (dir) => yamlFile(dir, 'pair.yaml', withServer(['headersTimeout: 30s', 'requestTimeout: 10s'])),
    expect: [/pair\.yaml:4:19 server\.headersTimeout: must not be longer than server\.requestTimeout/],
  },
  {
    name: 'a YAML alias bomb',
    file: (dir) => {
      const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
      for (let i = 1; i < 9; i++) {
        const prev = String.fromCharCode(96 + i);
        const name = String.fromCharCode(97 + i);
        lines.push(
          `${name}: &${name} [${Array(9)
            .fill('*' + prev)
            .join(',')}]`,
        );
      }
      return yamlFile(dir, 'bomb.yaml', lines.join('\n') + '\n');
    },
    expect: [/bomb\.yaml:2:\d+ \(root\): YAML aliases expand too far/],
  },
  {
    name: 'a FIFO (it would wait for a writer forever)',
    file: (dir) => {
      const path = join(dir, 'fifo.yaml');
      execFileSync('mkfifo', [path]);
      return path;
    },
    expect: [/fifo\.yaml \(root\): cannot read the file: it is a FIFO \(named pipe\), not a regular file/],
  },
  {
    name: '/dev/zero (it would be read without end)',
    file: () => '/dev/zero',
    expect: [/\/dev\/zero \(root\): cannot read the file: it is a character device/],
  },
  {
    name: 'a config file larger than 1 MB',
    file: (dir) => yamlFile(dir, 'big.yaml', withServer([]) + `# ${'x'.repeat(1024 * 1024)}\n`),
    expect: [/big\.yaml \(root\): the file is larger than 1024 KB/],
  },
  {
    name: 'a Latin-1 byte in an upstream apiKey (the file is not UTF-8)',
    file: (dir) =>
      yamlFile(
        dir,
        'latin1.yaml',
        Buffer.concat([
          Buffer.from(withServer([], 'sk-caf').split('\nplugins')[0]!),
          Buffer.from([0xe9]),
          Buffer.from('-key\nplugins: [responses-routes]\n'),
        ]),
      ),
    expect: [/latin1\.yaml:8:19 upstreams\[0\]\.apiKey: the file is not valid UTF-8 here \(byte 0xE9\)/],
  },
  {
    name: 'a non-ASCII character in a client key (it could never match a header)',
    file: (dir) =>
      yamlFile(
        dir,
        'key.yaml',
        withServer([]).replace(
          'upstreams:',
          'auth:\n  keys:\n    - name: k\n      key: "sk-gw-caf\\u00e9-0"\nupstreams:',
        ),
      ),
    expect: [/key\.yaml:7:12 auth\.keys\[0\]\.key: contains U\+00E9 at position 10, which cannot be sent/],
  },
  {
    name: 'a line break in an upstream apiKey from an environment variable',
    file: (dir) => yamlFile(dir, 'env.yaml', withServer([], '${CONFIG_FILES_KEY}')),
    expect: [/env\.yaml:8:13 upstreams\[0\]\.apiKey: contains U\+000A at position 9/],
  },
];

describe('reliability: config files that used to hang or crash (issue 11)', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-config-files-'));
  });
  after(() => {
    killStrayClis();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.name}: exit 1 with a located error, no stack`, async () => {
      const cli = runCli(['--config', c.file(dir)], {
        env: { CONFIG_FILES_KEY: 'sk-first\nsk-second' },
      });
      const { code } = await deadline(cli.closed, 10_000, `tapgate with ${c.name}`);
      const stderr = cli.stderr();
      assert.equal(code, 1, `exit ${code}\nstderr: ${stderr}\nstdout: ${cli.stdout()}`);
      for (const re of c.expect) assert.match(stderr, re);
      assert.doesNotMatch(stderr, /\n\s+at /, 'a stack trace was printed');
      assert.doesNotMatch(stderr, /failed to start|sk-first|sk-caf/, stderr);
      assert.doesNotMatch(cli.stdout(), /tapgate listening/);
    });
  }

  it('the longest duration Node can run is accepted; one millisecond more is not', () => {
    const at = (ms: number) => `proxy:\n  timeouts:\n    idle: ${ms}\n`;
    assert.equal(parseConfig(at(MAX_DURATION_MS)).config.proxy.timeouts.idle, MAX_DURATION_MS);
    assert.throws(() => parseConfig(at(MAX_DURATION_MS + 1)), /proxy\.timeouts\.idle: .* longer than/);
  });

  it('headersTimeout equal to requestTimeout, or requestTimeout 0 (off), is accepted', () => {
    parseConfig('server:\n  headersTimeout: 10s\n  requestTimeout: 10s\n');
    parseConfig('server:\n  headersTimeout: 10s\n  requestTimeout: 0\n');
  });
});
