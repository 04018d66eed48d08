/**
 * A reload re-reads the Codex auth files of the upstreams it keeps: a new login on disk (`codex
 * login` run again) is used from the next request, and an account whose refresh failed for good
 * comes back, without a restart. The reload itself never writes the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { writeAuthFile } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { DEFAULT_PLUGINS } from '../helpers/proxy-config.js';
import {
  allCompleted,
  client,
  ConfigDir,
  OLD_KEY,
  openaiUpstream,
  openStream,
  reloadConfig,
  startFileGateway,
  startHoldingUpstream,
  type FileGateway,
} from '../helpers/reload.js';

describe('reload: Codex auth files', function () {
  this.timeout(30_000);
  let dir: ConfigDir;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let g: FileGateway | undefined;

  beforeEach(async () => {
    dir = new ConfigDir();
    tokens = await startTokenServer();
    backend = await startCodexBackend((access) => tokens.accepts(access));
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await Promise.all([tokens.close(), backend.close()]);
    dir.remove();
  });

  const start = async (path: string) => {
    dir.write(
      reloadConfig({
        upstreams: [
          { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth: path },
        ],
      }),
    );
    g = await startFileGateway(dir.file);
    return g;
  };
  const ask = () => client(g!.url, OLD_KEY).responses.create({ model: 'gpt-5', input: 'hi' });
  const lastBearer = () => backend.requests.at(-1)!.headers.authorization;

  it('a new login in the auth file is used after the reload; the file is only read', async () => {
    const first = tokens.login('acct-r');
    const path = writeAuthFile(dir.dir, first);
    const gw = (await start(path)).gw;
    const kept = gw.pool.get('cx');
    assert.equal((await ask()).status, 'completed');
    assert.equal(lastBearer(), `Bearer ${first.access_token}`);

    const second = tokens.login('acct-r', 7200);
    writeAuthFile(dir.dir, second);
    const onDisk = readFileSync(path, 'utf8');
    const result = await gw.reload();
    assert.equal(result.status, 'applied');
    assert.deepEqual(result.upstreams, { added: [], removed: [], changed: [] });
    assert.equal(gw.pool.get('cx'), kept, 'the upstream object is kept');
    assert.equal((await ask()).status, 'completed');
    assert.equal(lastBearer(), `Bearer ${second.access_token}`);
    assert.equal(readFileSync(path, 'utf8'), onDisk, 'the reload did not write the file');
    assert.equal(tokens.requests.length, 0, 'no refresh was needed');
  });

  it('an account disabled by a failed refresh comes back after a new login and a reload', async () => {
    const dead = tokens.login('acct-d', -60);
    const path = writeAuthFile(dir.dir, dead);
    const gw = (await start(path)).gw;
    tokens.script = () => ({
      status: 401,
      body: { error: { code: 'refresh_token_reused', message: 'used' } },
    });
    await assert.rejects(ask());
    assert.equal(gw.pool.state.disabled('cx'), 'refresh failed: refresh_token_reused');

    tokens.script = undefined;
    const fresh = tokens.login('acct-d');
    writeAuthFile(dir.dir, fresh);
    assert.equal((await gw.reload()).status, 'applied');
    assert.equal(gw.pool.state.disabled('cx'), undefined);
    assert.equal((await ask()).status, 'completed');
    assert.equal(lastBearer(), `Bearer ${fresh.access_token}`);
  });

  it('an auth folder: a file added is a new upstream after the reload, the others are kept', async () => {
    const accounts = join(dir.dir, 'accounts');
    mkdirSync(accounts);
    const one = tokens.login('acct-1');
    writeAuthFile(accounts, one, {}, 'one.json');
    const gw = (await start('accounts/')).gw;
    const kept = gw.pool.get('cx-one');
    assert.deepEqual(
      gw.pool.upstreams.map((u) => u.name),
      ['cx-one'],
    );

    const two = tokens.login('acct-2');
    writeAuthFile(accounts, two, {}, 'two.json');
    const result = await gw.reload();
    assert.deepEqual(result.upstreams, { added: ['cx-two'], removed: [], changed: [] });
    assert.equal(gw.pool.get('cx-one'), kept);
    // Round-robin: two requests use both accounts, the new one included.
    const served = backend.requests.length;
    assert.equal((await ask()).status, 'completed');
    assert.equal((await ask()).status, 'completed');
    const bearers = backend.requests.slice(served).map((r) => r.headers.authorization);
    assert.ok(bearers.includes(`Bearer ${two.access_token}`), 'the added account served');
    assert.ok(bearers.includes(`Bearer ${one.access_token}`), 'the kept account served');
  });

  it('the first codex upstream: refused while its plugin is off, added once the plugin is listed', async () => {
    const api = await startHoldingUpstream();
    api.holding = false;
    try {
      const openaiOnly = (plugins: readonly unknown[]) =>
        reloadConfig({ plugins, upstreams: [openaiUpstream('api', api)] });
      const withCodex = (plugins: readonly unknown[]) =>
        reloadConfig({
          plugins,
          upstreams: [
            openaiUpstream('api', api),
            { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth: path },
          ],
        });
      const path = writeAuthFile(dir.dir, tokens.login('acct-n'));
      dir.write(openaiOnly(DEFAULT_PLUGINS));
      g = await startFileGateway(dir.file);
      dir.write(withCodex(DEFAULT_PLUGINS));
      const refused = await g.gw.reload();
      assert.equal(refused.status, 'refused');
      assert.match(
        refused.errors.join('\n'),
        /the set of plugins changed .*an upstream type enables its plugin/,
      );
      assert.equal(g.gw.pool.get('cx'), undefined);
      await g.close();

      // Listed from the start, the plugin is there before any codex upstream: a reload adds one.
      const listed = [...DEFAULT_PLUGINS, 'codex-upstream'];
      dir.write(openaiOnly(listed));
      g = await startFileGateway(dir.file);
      dir.write(withCodex(listed));
      const added = await g.gw.reload();
      assert.equal(added.status, 'applied', added.errors.join('; '));
      assert.deepEqual(added.upstreams, { added: ['cx'], removed: [], changed: [] });
      const before = backend.requests.length;
      const c = client(g.url, OLD_KEY);
      assert.equal(await allCompleted([openStream(c), openStream(c)]), 2);
      assert.equal(backend.requests.length, before + 1, 'the codex account took its turn');
    } finally {
      await api.close();
    }
  });
});
