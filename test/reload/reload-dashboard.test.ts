/**
 * The dashboard on a config reload: a new admin token takes over at once (the old one gets 401, its
 * sessions and viewers end), new viewer limits apply, and a new path (laid out at boot) is refused
 * with nothing changed.
 */
import assert from 'node:assert/strict';
import { CLOSE_LOGGED_OUT } from '../../plugins/dashboard/feed.js';
import { ADMIN_TOKEN, cookiePair, get, login, openFeed, UpgradeRefused } from '../helpers/dashboard-feed.js';
import { DEFAULT_PLUGINS } from '../helpers/proxy-config.js';
import {
  ConfigDir,
  openaiUpstream,
  reloadConfig,
  startFileGateway,
  startHoldingUpstream,
  type FileGateway,
  type HoldingUpstream,
} from '../helpers/reload.js';
import { registerSecret } from '../helpers/secret-scan.js';

const NEXT_TOKEN = 'admin-token-rotated-0123456789ab';
registerSecret(NEXT_TOKEN);

describe('reload: dashboard', function () {
  this.timeout(30_000);
  let dir: ConfigDir;
  let up: HoldingUpstream;
  let g: FileGateway | undefined;

  beforeEach(async () => {
    dir = new ConfigDir();
    up = await startHoldingUpstream();
    up.holding = false;
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await up.close();
    dir.remove();
  });

  const config = (options: Record<string, unknown>) =>
    reloadConfig({
      plugins: [...DEFAULT_PLUGINS, { name: 'dashboard', options: { token: ADMIN_TOKEN, ...options } }],
      upstreams: [openaiUpstream('a', up)],
    });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('a new token: the old one and its sessions and viewers end at once, the new one works', async () => {
    dir.write(config({}));
    g = await startFileGateway(dir.file);
    const session = await login(g.url, ADMIN_TOKEN);
    const cookie = { cookie: cookiePair(session.setCookie!) };
    const byBearer = await openFeed(g.url);
    const bySession = await openFeed(g.url, cookie);
    assert.equal((await get(g.url, '/dashboard/api/upstreams', bearer(ADMIN_TOKEN))).status, 200);

    dir.write(config({ token: NEXT_TOKEN }));
    const result = await g.gw.reload();
    assert.equal(result.status, 'applied', result.errors.join('; '));
    assert.deepEqual(result.plugins, ['dashboard']);
    assert.equal(await byBearer.closed, CLOSE_LOGGED_OUT);
    assert.equal(await bySession.closed, CLOSE_LOGGED_OUT);
    assert.equal((await get(g.url, '/dashboard/api/upstreams', bearer(ADMIN_TOKEN))).status, 401);
    assert.equal((await get(g.url, '/dashboard/api/upstreams', cookie)).status, 401);
    assert.equal((await get(g.url, '/dashboard/api/upstreams', bearer(NEXT_TOKEN))).status, 200);
    const again = await openFeed(g.url, bearer(NEXT_TOKEN));
    await again.close();
    assert.ok(!JSON.stringify(g.logs()).includes(NEXT_TOKEN), 'the new token was logged');
  });

  it('maxViewers applies to the next viewer; a new path is refused and the old one keeps serving', async () => {
    dir.write(config({}));
    g = await startFileGateway(dir.file);
    const first = await openFeed(g.url);
    dir.write(config({ maxViewers: 1 }));
    assert.equal((await g.gw.reload()).status, 'applied');
    await assert.rejects(openFeed(g.url), (e: unknown) => e instanceof UpgradeRefused && e.status === 503);
    await first.close();

    dir.write(config({ maxViewers: 1, path: '/ops' }));
    const refused = await g.gw.reload();
    assert.equal(refused.status, 'refused');
    assert.match(
      refused.errors.join('\n'),
      /plugins\[3\]\.options: plugin dashboard cannot change path without a restart; restart to apply/,
    );
    assert.equal((await get(g.url, '/dashboard/api/upstreams', bearer(ADMIN_TOKEN))).status, 200);
  });
});
