/**
 * plugin dashboard, boot: no admin token means no start (with a message that says what to set),
 * options are checked strictly, the path moves everything, and a gateway with viewers connected
 * still shuts down: viewers are let go as soon as the shutdown begins (the `closing` hook, issue 12).
 */
import assert from 'node:assert/strict';
import DashboardPlugin from '../../plugins/dashboard/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ADMIN_TOKEN, dashboardConfig, get, login, openFeed, refusal } from '../helpers/dashboard-feed.js';
import { startScripted } from '../helpers/pool.js';
import { deadline, postJson } from '../helpers/raw.js';

const UPSTREAMS = [{ name: 'up1', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-upstream-boot-secret' }];

function yamlWith(pluginEntry: string): string {
  return `
server: { host: 127.0.0.1, port: 0 }
auth:
  keys:
    - { name: tester, key: "\${TAPGATE_TEST_KEY}" }
upstreams:
  - { name: up1, type: openai, baseUrl: 'http://127.0.0.1:9/v1', apiKey: sk-upstream-boot-secret }
plugins:
  - responses-routes
${pluginEntry}
`;
}

async function bootError(yaml: string, env: Record<string, string> = {}): Promise<Error> {
  return startGateway(yaml, env).then(
    async (g) => {
      await g.close();
      return assert.fail('the gateway booted');
    },
    (err: unknown) => err as Error,
  );
}

describe('plugin dashboard: boot', () => {
  const open: TestGateway[] = [];
  afterEach(async () => {
    while (open.length > 0) await open.pop()!.close();
  });

  it('refuses to start without an admin token, saying which option and variable to set', async () => {
    const cases: [string, string][] = [
      ['no options at all', '  - dashboard'],
      ['no token', '  - name: dashboard\n    options: { path: /dash }'],
      ['an empty token', "  - name: dashboard\n    options: { token: '' }"],
      ['a blank token', "  - name: dashboard\n    options: { token: '   ' }"],
      ['an unset variable', '  - name: dashboard\n    options: { token: "${TAPGATE_ADMIN_TOKEN:-}" }'],
    ];
    for (const [what, entry] of cases) {
      const err = await bootError(yamlWith(entry));
      assert.equal(err.name, 'PluginOptionsError', what);
      assert.match(
        err.message,
        /options\.token is empty: set TAPGATE_ADMIN_TOKEN \(the admin token for the page and the feed\)/,
        what,
      );
      assert.match(err.message, /plugin "dashboard"/, what);
    }
  });

  it('the documented ${TAPGATE_ADMIN_TOKEN} with the variable unset stops the boot, naming it', async () => {
    const err = await bootError(
      yamlWith('  - name: dashboard\n    options: { token: "${TAPGATE_ADMIN_TOKEN}" }'),
    );
    assert.match(
      err.message,
      /plugins\[1\]\.options\.token: environment variable TAPGATE_ADMIN_TOKEN is not set/,
    );
  });

  it('a plugin constructed by hand without a token throws the same message', () => {
    assert.throws(
      () => new DashboardPlugin({ token: '' } as never),
      /dashboard: options\.token is empty: set TAPGATE_ADMIN_TOKEN/,
    );
  });

  it('rejects bad options with PluginOptionsError, naming each key', async () => {
    const err = await bootError(
      yamlWith(
        `  - name: dashboard
    options:
      token: t0ken-abcdef-0123456
      path: dashboard/
      batchMs: soon
      maxViewers: 0
      maxBufferedBytes: lots
      colour: blue`,
      ),
    );
    assert.equal(err.name, 'PluginOptionsError');
    assert.match(err.message, /plugins\[1\]\.options\.path: expected a path such as \/dashboard/);
    assert.match(err.message, /plugins\[1\]\.options\.batchMs: expected a duration/);
    assert.match(err.message, /plugins\[1\]\.options\.maxViewers:/);
    assert.match(err.message, /plugins\[1\]\.options\.maxBufferedBytes: expected a size/);
    assert.match(err.message, /plugins\[1\]\.options\.colour: unknown key/);
  });

  it("refuses a path that would take over the gateway's own routes", async () => {
    for (const path of ['/v1', '/v1/dash', '/responses', '/backend-api/x']) {
      const err = await bootError(
        yamlWith(`  - name: dashboard\n    options: { token: t0ken-abcdef-0123456, path: ${path} }`),
      );
      assert.equal(err.name, 'PluginOptionsError', path);
      assert.match(err.message, /options\.path: this path belongs to the gateway/, path);
    }
  });

  it('serves at /dashboard by default', async () => {
    const g = await startGateway(dashboardConfig({ upstreams: UPSTREAMS }));
    open.push(g);
    assert.equal((await get(g.url, '/dashboard/login')).status, 200);
    assert.equal((await get(g.url, '/dashboard')).status, 401);
    const feed = await openFeed(g.url);
    assert.equal((await feed.message(() => true)).type, 'snapshot');
    await feed.close();
  });

  it('a custom path moves the page, the login, the cookie and the feed', async () => {
    const g = await startGateway(dashboardConfig({ upstreams: UPSTREAMS, dashboard: { path: '/ops/live' } }));
    open.push(g);
    assert.equal((await get(g.url, '/ops/live')).status, 401);
    const form = await get(g.url, '/ops/live/login');
    assert.equal(form.status, 200);
    assert.match(form.text(), /action="\/ops\/live\/login"/);
    const done = await login(g.url, ADMIN_TOKEN, '/ops/live');
    assert.equal(done.status, 303);
    assert.equal(done.location, '/ops/live');
    assert.match(done.setCookie ?? '', /; Path=\/ops\/live(;|$)/);
    const page = await get(g.url, '/ops/live', { authorization: `Bearer ${ADMIN_TOKEN}` });
    assert.equal(page.status, 200);
    assert.ok(!page.text().includes('"/dashboard/assets/'), 'asset URLs follow the path');
    assert.equal(
      (await get(g.url, '/ops/live/assets/app.js', { authorization: `Bearer ${ADMIN_TOKEN}` })).status,
      200,
    );
    const feed = await openFeed(g.url, { authorization: `Bearer ${ADMIN_TOKEN}` }, '/ops/live/ws');
    await feed.message((m) => m.type === 'snapshot');
    await feed.close();
    // The default path is now nobody's: the core answers (401 for a route that needs a client key),
    // to an upgrade as to a request.
    assert.notEqual((await get(g.url, '/dashboard/login')).status, 200);
    assert.equal(await refusal(g.url, { authorization: `Bearer ${ADMIN_TOKEN}` }), 401);
  });

  it('shuts down with viewers connected: they are told the gateway is going away', async () => {
    const g = await startGateway(dashboardConfig({ upstreams: UPSTREAMS }));
    const feeds = await Promise.all([openFeed(g.url), openFeed(g.url)]);
    await Promise.all(feeds.map((f) => f.message((m) => m.type === 'snapshot')));
    await deadline(g.close(), 5000, 'gateway close with viewers connected');
    for (const f of feeds) assert.equal(await deadline(f.closed, 2000, 'viewer close'), 1001);
  });

  it('lets viewers go when shutdown begins, not after the drain or the next batch', async () => {
    const up = await startScripted('up1');
    // The longest batch: a feed that learned of the shutdown at its next batch would wait 10 s.
    const g = await startGateway(
      dashboardConfig({
        upstreams: [{ name: 'up1', baseUrl: up.url + '/v1', apiKey: 'sk-upstream-boot-secret' }],
        dashboard: { batchMs: 10_000 },
      }),
    );
    try {
      const feed = await openFeed(g.url);
      await feed.message((m) => m.type === 'snapshot');
      const held = up.holdNext(5);
      const pending = postJson(g.url, '/v1/responses', { model: 'gpt-test', stream: true, input: 'hi' });
      const stream = await held;
      const closed = g.close(5000);
      assert.equal(await deadline(feed.closed, 1000, 'viewer let go while the request drains'), 1001);
      assert.equal(g.gw.inflight, 1, 'the request is still draining');
      stream.finish();
      assert.equal((await deadline(pending, 5000, 'drained request')).status, 200);
      await deadline(closed, 5000, 'gateway close');
    } finally {
      await g.close();
      await up.close();
    }
  });
});
