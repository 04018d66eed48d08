/**
 * A reload that cannot apply changes nothing: a broken file, an unknown key, a wrong type, an
 * unknown upstream type, a plugin option error, a key only a restart can change, the changed
 * options of a plugin without reload(), a plugin added or removed. Each error is logged with its key
 * path and line, and the old config keeps serving. Then a valid reload applies a plugin's options.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import {
  allCompleted,
  client,
  ConfigDir,
  OLD_KEY,
  openStream,
  startFileGateway,
  startHoldingUpstream,
  UPSTREAM_KEY,
  type FileGateway,
  type HoldingUpstream,
} from '../helpers/reload.js';

/** A plugin module with options and no reload(): its options need a restart. */
const FIXED_PLUGIN = `export default class FixedOptions {
  static meta = { name: 'fixed-options', options: { safeParse: (v) => ({ success: true, data: v }) } };
  apply() {}
}
`;

interface Parts {
  server?: string;
  upstreams?: string[];
  errorCodes?: string;
  fixed?: string;
  requestId?: boolean;
  tail?: string;
}

describe('invalid and refused reloads', function () {
  this.timeout(30_000);
  let dir: ConfigDir;
  let a: HoldingUpstream;
  let g: FileGateway;
  const upstreamA = () => `  - { name: a, type: openai, baseUrl: "${a.url}/v1", apiKey: ${UPSTREAM_KEY} }`;

  /** The config with fixed line numbers: server 1, keys 4, upstreams from 7, plugins after them. */
  const config = (p: Parts = {}) =>
    [
      p.server ?? 'server: { host: 127.0.0.1, port: 0 }',
      'auth:',
      '  keys:',
      `    - { name: old, key: ${OLD_KEY} }`,
      'usage: { enabled: false }',
      'upstreams:',
      ...(p.upstreams ?? [upstreamA()]),
      'plugins:',
      '  - responses-routes',
      ...(p.requestId === false ? [] : ['  - request-id']),
      `  - { name: error-codes, options: { map: { invalid_api_key: ${p.errorCodes ?? 'key_refused'} } } }`,
      `  - { name: ./fixed-options.mjs, options: { level: ${p.fixed ?? '1'} } }`,
      ...(p.tail === undefined ? [] : [p.tail]),
      '',
    ].join('\n');

  before(async () => {
    dir = new ConfigDir();
    writeFileSync(join(dir.dir, 'fixed-options.mjs'), FIXED_PLUGIN);
    a = await startHoldingUpstream();
    a.holding = false;
    dir.write(config());
    g = await startFileGateway(dir.file);
  });
  after(async () => {
    await g.close();
    await a.close();
    dir.remove();
  });

  /** Refused with these errors (each `file:line:col path: message`), logged, and the old config serving. */
  async function refusedWith(text: string, ...expected: RegExp[]): Promise<void> {
    const before = g.gw.config;
    const served = a.requests.length;
    dir.write(text);
    const result = await g.gw.reload();
    assert.equal(result.status, 'refused');
    for (const e of expected) {
      assert.ok(
        result.errors.some((line) => e.test(line)),
        `no error matches ${e}:\n${result.errors.join('\n')}`,
      );
      assert.ok(
        g
          .logs()
          .some((l) => typeof l.msg === 'string' && l.msg.startsWith('reload refused') && e.test(l.msg)),
        `no log line matches ${e}`,
      );
    }
    assert.equal(g.gw.config, before, 'the config in force is the old one');
    assert.equal(await allCompleted([openStream(client(g.url, OLD_KEY))]), 1);
    assert.equal(a.requests.length, served + 1, 'served by the old upstream');
  }

  const at = (line: number, rest: string) => new RegExp(`config\\.yaml:${line}:\\d+ ${rest}`);

  it('a YAML syntax error', async () => {
    await refusedWith(
      config({ upstreams: [`  - { name: a, type: openai, baseUrl: "${a.url}/v1"`] }),
      /config\.yaml:\d+:\d+ \(root\): YAML syntax/,
    );
  });

  it('an unknown key', async () => {
    await refusedWith(
      config({ server: 'server: { host: 127.0.0.1, port: 0, bogus: 1 }' }),
      at(1, 'server\\.bogus: unknown key'),
    );
  });

  it('a value of the wrong type', async () => {
    await refusedWith(config({ tail: 'proxy: { maxAttempts: many }' }), at(13, 'proxy\\.maxAttempts: '));
  });

  it('an unknown upstream type', async () => {
    await refusedWith(
      config({ upstreams: [upstreamA(), `  - { name: b, type: nope, baseUrl: "${a.url}/v1" }`] }),
      at(8, 'upstreams\\[1\\]\\.type: unknown upstream type "nope"'),
    );
  });

  it("a plugin's invalid options", async () => {
    await refusedWith(
      config({ errorCodes: '""' }),
      at(11, 'plugins\\[2\\]\\.options\\.map\\.invalid_api_key: '),
    );
  });

  it('a key only a restart can change', async () => {
    await refusedWith(
      config({ server: 'server: { host: 127.0.0.1, port: 1234 }' }),
      at(1, 'server\\.port: changing it needs a restart; reload refused, nothing changed'),
    );
  });

  it('changed options of a plugin without reload()', async () => {
    assert.ok(
      g
        .logs()
        .some(
          (l) =>
            Array.isArray(l.plugins) &&
            l.plugins.includes('fixed-options') &&
            !l.plugins.includes('error-codes') &&
            /cannot reload/.test(String(l.msg)),
        ),
      'the boot log names the plugins that cannot reload',
    );
    await refusedWith(
      config({ fixed: '2' }),
      at(12, 'plugins\\[3\\]\\.options: plugin fixed-options cannot reload its options; restart to apply'),
    );
  });

  it('a plugin removed', async () => {
    await refusedWith(
      config({ requestId: false }),
      /plugins: the set of plugins changed \(removed request-id; .*needs a restart/,
    );
  });

  it('a valid reload applies a plugin’s new options to the next request', async () => {
    const code = async () => {
      const err = await openStream(client(g.url, 'sk-wrong-key-000000')).done.catch((e: unknown) => e);
      assert.ok(err instanceof OpenAI.AuthenticationError);
      return err.code;
    };
    assert.equal(await code(), 'key_refused');
    dir.write(config({ errorCodes: 'key_refused_after_reload', tail: 'log: { level: warn }' }));
    const result = await g.gw.reload();
    assert.equal(result.status, 'applied', result.errors.join('\n'));
    assert.deepEqual(result.plugins, ['error-codes']);
    assert.equal(await code(), 'key_refused_after_reload');
    assert.equal(g.gw.logger.level, 'warn');
  });
});
