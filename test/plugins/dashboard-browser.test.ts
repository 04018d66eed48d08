/**
 * The dashboard in a real browser: Chromium driven by playwright-core, against the real
 * plugin on an in-process gateway. It logs in through the form, sends requests through the gateway and
 * waits (Playwright's auto-waiting locators: `locator.waitFor`, with attribute selectors and exact-text
 * filters; never a fixed sleep) for them to show up on the page: rows with their upstream and status,
 * an upstream cooling after a 429, a row's lifecycle, a logout. A second test runs the demo
 * (`npm run demo`) and checks that the page moves, then that it notices the gateway going away.
 *
 * Screenshots go to test/artifacts/ (git-ignored). With TAPGATE_SCREENSHOT=1 the demo test lets the
 * demo run for TAPGATE_SCREENSHOT_SECONDS (default 150) and writes docs/dashboard.png, the README's.
 *
 * Chromium comes from the devDependency @sparticuz/chromium, else a system Chromium (test/helpers/browser.ts;
 * TAPGATE_CHROMIUM=<path>|npm|system chooses): without one these tests fail, they are never skipped.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import YAML from 'yaml';
import { startDemo, type Demo } from '../../examples/demo/demo.js';
import { CLIENT_KEY, LogCapture, startGateway, type TestGateway } from '../helpers/gateway.js';
import { jsonError, poolConfig, SERVED_BY, startScripted } from '../helpers/pool.js';
import { codexStream, startCodexBackend } from '../helpers/codex-backend.js';
import { accessToken } from '../helpers/codex-jwt.js';
import { startTokenServer } from '../helpers/codex-token-server.js';
import { DEFAULT_PLUGINS, gatewayConfig } from '../helpers/proxy-config.js';
import { writeSseHead } from '../helpers/upstream.js';
import { launchChromium } from '../helpers/browser.js';

const ARTIFACTS = path.resolve('test/artifacts');
const DOCS_SHOT = path.resolve('docs/dashboard.png');
const ADMIN_TOKEN = 'adm-browser-test-0123456789';
const VIEWPORT = { width: 1280, height: 800 };
/** How long a browser-side wait may take before the test fails (the feed batches every 250 ms). */
const WAIT_MS = 10_000;

/** The feed's cells, by their class `c-<name>`. */
const CELLS = [
  'time',
  'id',
  'route',
  'model',
  'client',
  'upstream',
  'attempts',
  'status',
  'ttfb',
  'duration',
  'tokens',
  'error',
] as const;
type CellName = (typeof CELLS)[number];
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('dashboard in a browser (Chromium)', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  before(async function () {
    // The npm build is unpacked on first use (a few seconds on a cold machine).
    this.timeout(120_000);
    ({ browser } = await launchChromium());
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close().catch(() => {});
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  after(async () => {
    await browser?.close();
  });

  /** A fresh browser context (no cookies), with the page's errors collected. */
  async function openPage(): Promise<{ page: Page; pageErrors: string[] }> {
    const context = await browser!.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    return { page, pageErrors };
  }

  /** Opens the dashboard, meets the login form, logs in with the token, waits for the live feed. */
  async function logIn(page: Page, dashboardUrl: string, token: string): Promise<void> {
    // Without a session, the page is the server's login form.
    await page.goto(dashboardUrl);
    await page.locator('form input[name="token"]').fill(token);
    await page.locator('form [type="submit"]').click();
    // The form posts, the server sets the cookie and sends the browser back to the page, which opens the feed.
    await page.locator('#conn[data-state="live"]').waitFor();
    assert.equal(new URL(page.url()).pathname, new URL(dashboardUrl).pathname);
  }

  /**
   * Waits (auto-waiting locator) until the row of request `id` is in `state` and its cells read
   * exactly `want` (cell class `c-<key>` → text); then returns every cell's text.
   */
  async function waitForRow(
    page: Page,
    id: string,
    state: string,
    want: Partial<Record<CellName, string>>,
  ): Promise<Record<CellName, string>> {
    const anyRow = page.locator(`tr.req[data-id="${id}"]`);
    let row = page.locator(`tr.req[data-id="${id}"][data-state="${state}"]`);
    for (const [cell, text] of Object.entries(want))
      row = row.filter({
        has: page.locator(`td.c-${cell}`, { hasText: new RegExp(`^\\s*${escapeRe(text)}\\s*$`) }),
      });
    try {
      await row.waitFor();
    } catch (err) {
      const shown = (await anyRow.count()) > 0 ? await readRow(anyRow) : 'no row';
      const what = `${state} ${JSON.stringify(want)}`;
      throw new Error(`row ${id} never showed ${what}; it shows ${JSON.stringify(shown)}`, { cause: err });
    }
    return readRow(row);
  }

  /** Waits (auto-waiting locator) until `loc` reads exactly `text`. */
  async function waitForText(loc: Locator, text: string): Promise<void> {
    try {
      await loc.filter({ hasText: new RegExp(`^\\s*${escapeRe(text)}\\s*$`) }).waitFor();
    } catch (err) {
      const shown = JSON.stringify(await loc.textContent().catch(() => null));
      throw new Error(`${String(loc)} never read ${JSON.stringify(text)}; it reads ${shown}`, { cause: err });
    }
  }

  async function readRow(row: Locator): Promise<Record<CellName, string>> {
    const out = {} as Record<CellName, string>;
    for (const cell of CELLS) out[cell] = ((await row.locator(`td.c-${cell}`).textContent()) ?? '').trim();
    return out;
  }

  async function send(gw: TestGateway, stream: boolean) {
    const res = await fetch(gw.url + '/v1/responses', {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', input: 'hi', stream }),
    });
    await res.arrayBuffer(); // the whole answer, so the request has finished
    const id = res.headers.get('x-request-id');
    assert.ok(id, 'the request-id plugin names every request');
    return { status: res.status, id, servedBy: res.headers.get(SERVED_BY) };
  }

  it('logs in, then shows requests, an upstream cooling after a 429, and a lifecycle', async () => {
    const alpha = await startScripted('alpha');
    const bravo = await startScripted('bravo');
    cleanups.push(
      () => alpha.close(),
      () => bravo.close(),
    );
    // alpha is preferred; bravo takes what alpha cannot.
    const config = YAML.parse(
      poolConfig([
        { name: 'alpha', url: alpha.url, priority: 0, maxConcurrency: 4 },
        { name: 'bravo', url: bravo.url, priority: 1 },
      ]),
    ) as { plugins: unknown[] };
    config.plugins.push({
      name: 'dashboard',
      options: { path: '/dashboard', token: '${TAPGATE_ADMIN_TOKEN}' },
    });
    const gw = await startGateway(YAML.stringify(config), { TAPGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    cleanups.push(() => gw.close());

    const { page, pageErrors } = await openPage();
    await logIn(page, gw.url + '/dashboard', ADMIN_TOKEN);
    await page.locator('.up-card[data-upstream="alpha"][data-state="ok"]').waitFor();
    await page.locator('.up-card[data-upstream="bravo"][data-state="ok"]').waitFor();

    // 1. A success, streamed, from alpha.
    const ok = await send(gw, true);
    assert.equal(ok.status, 200);
    assert.equal(ok.servedBy, 'alpha');
    const okRow = await waitForRow(page, ok.id, 'ok', { status: '200', upstream: 'alpha' });
    assert.equal(okRow.client, 'tester');
    assert.equal(okRow.attempts, '1');

    // 2. alpha answers 429 with Retry-After: it cools down, and the request fails over to bravo.
    alpha.answer(
      jsonError(
        429,
        {
          error: {
            message: 'Rate limit reached for gpt-test',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
        { 'retry-after': '120' },
      ),
    );
    const failover = await send(gw, false);
    assert.equal(failover.status, 200);
    assert.equal(failover.servedBy, 'bravo');
    await waitForRow(page, failover.id, 'ok', { status: '200', upstream: 'bravo', attempts: '2' });
    const alphaCard = page.locator('.up-card[data-upstream="alpha"][data-state="cooling"]');
    await alphaCard.waitFor();
    const alphaText = (await alphaCard.textContent()) ?? '';
    assert.match(alphaText, /cooling/i);
    assert.match(alphaText, /until \d\d:\d\d:\d\d/);
    assert.match(alphaText, /rate_limit_exceeded|Rate limit/);

    // 3. bravo answers 429 too: nothing is left, so the client gets the 429. Its message carries
    //    markup, which the page must show as text.
    bravo.answer(
      jsonError(
        429,
        {
          error: {
            message: 'Slow down <b>now</b>',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
        { 'retry-after': '90' },
      ),
    );
    const limited = await send(gw, true);
    assert.equal(limited.status, 429);
    const limitedRow = await waitForRow(page, limited.id, 'error', { status: '429', upstream: 'bravo' });
    assert.match(limitedRow.error, /rate_limit_exceeded/);
    assert.match(limitedRow.error, /Slow down <b>now<\/b>/, 'markup in an error message is shown as text');
    assert.equal(await page.locator('#feed b').count(), 0, 'no element was made from the message');
    await page.locator('.up-card[data-upstream="bravo"][data-state="cooling"]').waitFor();

    // The totals agree with the feed (which also shows the browser's own /favicon.ico 404 from the
    // login page: a request through the gateway like any other).
    const rows = await page.locator('tr.req').count();
    assert.ok(rows >= 3);
    await waitForText(page.locator('#t-requests'), String(rows));
    await waitForText(
      page.locator('#t-errors'),
      String(await page.locator('tr.req[data-state="error"]').count()),
    );

    // 4. A click on the failover's row shows its lifecycle: two attempts, the failover between them.
    await page.locator(`tr.req[data-id="${failover.id}"]`).click();
    const events = page.locator(`tr.detail[data-id="${failover.id}"] .events li`);
    await events.last().waitFor();
    const kinds = await Promise.all((await events.all()).map((li) => li.getAttribute('data-kind')));
    const want = ['start', 'attempt', 'failover', 'attempt', 'terminal', 'finish'];
    let at = 0;
    for (const k of kinds) if (k === want[at]) at++;
    assert.equal(
      at,
      want.length,
      `lifecycle ${JSON.stringify(kinds)} should contain ${JSON.stringify(want)} in order`,
    );
    const detailText = (await page.locator(`tr.detail[data-id="${failover.id}"]`).textContent()) ?? '';
    assert.match(detailText, /alpha/);
    assert.match(detailText, /bravo/);
    // A second click folds it away.
    await page.locator(`tr.req[data-id="${failover.id}"]`).click();
    await page.locator(`tr.detail[data-id="${failover.id}"]`).waitFor({ state: 'detached' });
    await page.locator(`tr.req[data-id="${limited.id}"]`).click();
    await page.locator(`tr.detail[data-id="${limited.id}"] .events li`).first().waitFor();

    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });

    // 4b. The cards' admin buttons (the admin API with the session): bravo's Disable takes it out,
    //     its Enable brings it back (still cooling from its 429); alpha's Clear cooldown ends its own.
    const bravoCard = page.locator('.up-card[data-upstream="bravo"]');
    await bravoCard.locator('button[data-action="disable"]').click();
    await page.locator('.up-card[data-upstream="bravo"][data-state="disabled"]').waitFor();
    await waitForText(bravoCard.locator('.up-action-note'), 'Disabled');
    assert.equal(gw.gw.pool.state.disabled('bravo'), 'disabled from the dashboard');
    await bravoCard.locator('button[data-action="enable"]').click();
    await page.locator('.up-card[data-upstream="bravo"][data-state="cooling"]').waitFor();
    await waitForText(bravoCard.locator('.up-action-note'), 'Enabled');
    assert.equal(gw.gw.pool.state.disabled('bravo'), undefined);
    await page
      .locator('.up-card[data-upstream="alpha"]')
      .locator('button[data-action="clear-cooldown"]')
      .click();
    await page.locator('.up-card[data-upstream="alpha"][data-state="ok"]').waitFor();
    assert.equal(gw.gw.pool.state.cooldown('alpha', 'gpt-test', Date.now()), undefined);
    assert.equal((await send(gw, true)).servedBy, 'alpha', 'alpha serves again before its Retry-After');
    const audit = gw.logs
      .filter((l) => l.msg === 'admin action')
      .map((l) => l.audit as Record<string, unknown>);
    assert.deepEqual(
      audit.map((a) => [a.action, a.upstream, a.by, a.result]),
      [
        ['disable', 'bravo', 'session', 'ok'],
        ['enable', 'bravo', 'session', 'ok'],
        ['clear-cooldown', 'alpha', 'session', 'ok'],
      ],
    );

    // 5. Logged out elsewhere (another tab ends the session): the feed closes with "log in again",
    //    and the page says so and offers the login link instead of reconnecting.
    await page.evaluate('fetch(location.pathname + "/logout", { method: "POST" }).then(() => undefined)');
    await page.locator('#conn[data-state="auth"]').waitFor();
    await page.locator('#conn-login').waitFor();
    await page.locator('#conn-login').click();
    await page.locator('form input[name="token"]').waitFor();

    // 6. Logged in again, the page's own button logs out: back to the form.
    await logIn(page, gw.url + '/dashboard', ADMIN_TOKEN);
    await page.locator('#logout button').click();
    await page.locator('form input[name="token"]').waitFor();
    assert.deepEqual(pageErrors, [], 'the page threw');
  });

  it('Codex accounts that report their usage windows show 5-hour and weekly bars with their resets', async () => {
    const tokens = await startTokenServer();
    const backend = await startCodexBackend(() => true);
    cleanups.push(
      () => tokens.close(),
      () => backend.close(),
    );
    // Account `quota-a` reports its windows; `quota-b` reports none.
    backend.answer = (rec, res) => {
      writeSseHead(
        res,
        rec.headers['chatgpt-account-id'] === 'quota-a'
          ? {
              'x-codex-primary-used-percent': '42',
              'x-codex-primary-window-minutes': '300',
              'x-codex-primary-reset-after-seconds': String(2 * 3600 + 13 * 60 + 30),
              'x-codex-secondary-used-percent': '87.4',
              'x-codex-secondary-window-minutes': '10080',
              'x-codex-secondary-reset-after-seconds': String(3 * 86_400 + 5 * 3600 + 1800),
            }
          : {},
      );
      res.end(codexStream().join(''));
    };
    const upstreams = ['quota-a', 'quota-b'].map((name) => ({
      name,
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      tokens: { access_token: accessToken(name), refresh_token: `rt-${name}`, account_id: name },
    }));
    const gw = await startGateway(
      gatewayConfig({
        pool: { strategy: 'round-robin' },
        upstreams,
        plugins: [...DEFAULT_PLUGINS, { name: 'dashboard', options: { token: '${TAPGATE_ADMIN_TOKEN}' } }],
      }),
      { TAPGATE_ADMIN_TOKEN: ADMIN_TOKEN },
    );
    cleanups.push(() => gw.close());

    const { page, pageErrors } = await openPage();
    await logIn(page, gw.url + '/dashboard', ADMIN_TOKEN);
    const a = page.locator('.up-card[data-upstream="quota-a"]');
    const b = page.locator('.up-card[data-upstream="quota-b"]');
    await a.waitFor();
    assert.equal(await a.locator('.quota').count(), 0, 'nothing before the account reports');
    // Round-robin: one request each.
    assert.equal((await send(gw, true)).status, 200);
    assert.equal((await send(gw, true)).status, 200);

    const five = a.locator('.quota-row[data-window="primary"]');
    const week = a.locator('.quota-row[data-window="secondary"]');
    await five.waitFor();
    await waitForText(five.locator('.quota-label'), '5h');
    await waitForText(five.locator('.quota-pct'), '42%');
    // 2h 13m 30s left when it was sent: it reads 2h 13m, or 2h 12m on a slow run.
    assert.match((await five.locator('.quota-reset').textContent()) ?? '', /^resets in 2h 1[23]m$/);
    assert.equal(await five.getAttribute('data-level'), 'ok');
    await waitForText(week.locator('.quota-label'), 'weekly');
    await waitForText(week.locator('.quota-pct'), '87%');
    assert.match((await week.locator('.quota-reset').textContent()) ?? '', /^resets in 3d 5h$/);
    assert.equal(await week.getAttribute('data-level'), 'warn');
    // The bars are as wide as the use.
    assert.equal(
      await five.locator('.quota-fill').evaluate((el) => (el as { style: { width: string } }).style.width),
      '42%',
    );
    assert.equal(
      await week.locator('.quota-fill').evaluate((el) => (el as { style: { width: string } }).style.width),
      '87%',
    );
    // quota-b answered too (its request row is there), and shows no quota.
    await page.locator('tr.req td.c-upstream', { hasText: 'quota-b' }).first().waitFor();
    assert.equal(await b.locator('.quota').count(), 0, 'no bars for an account that reported none');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-quota.png') });
    assert.deepEqual(pageErrors, [], 'the page threw');
  });

  it('the usage panel shows requests and tokens per client key and per account', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tapgate-browser-usage-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const up = await startScripted('acct-a');
    cleanups.push(() => up.close());
    const gw = await startGateway(
      gatewayConfig({
        upstreams: [
          { name: 'acct-a', type: 'openai', baseUrl: `${up.url}/v1`, apiKey: 'sk-upstream-usage-secret' },
        ],
        usage: { enabled: true, path: path.join(dir, 'usage.db'), flushInterval: '50ms' },
        plugins: [...DEFAULT_PLUGINS, { name: 'dashboard', options: { token: ADMIN_TOKEN } }],
      }),
    );
    cleanups.push(() => gw.close());
    for (let i = 0; i < 2; i++) assert.equal((await send(gw, true)).status, 200);

    const { page, pageErrors } = await openPage();
    await logIn(page, gw.url + '/dashboard', ADMIN_TOKEN);
    // The page reads the summary at load and every 15 s; the records are written within 50 ms.
    const keyRow = page.locator('#usage-keys tr[data-name="tester"]');
    const accountRow = page.locator('#usage-accounts tr[data-name="acct-a"]');
    for (
      let tries = 0;
      (await keyRow.count()) === 0 || (await keyRow.locator('td').nth(1).textContent()) !== '2';
      tries++
    ) {
      assert.ok(tries < 4, 'the usage panel never showed the two requests');
      await page.reload();
      await page.locator('#conn[data-state="live"]').waitFor();
    }
    const cells = async (row: Locator) => (await row.locator('td').allTextContents()).map((t) => t.trim());
    // The scripted upstream's answers report 10 input and 2 output tokens each.
    assert.deepEqual(await cells(keyRow), ['tester', '2', '20 / 4', '2', '20 / 4']);
    assert.deepEqual(await cells(accountRow), ['acct-a', '2', '20 / 4', '2', '20 / 4']);
    await page.locator('#usage').screenshot({ path: path.join(ARTIFACTS, 'dashboard-usage.png') });
    assert.deepEqual(pageErrors, [], 'the page threw');
  });

  it('the demo: a moving dashboard with traffic from simulated clients', async function () {
    const shoot = process.env.TAPGATE_SCREENSHOT === '1';
    const seconds = Number(process.env.TAPGATE_SCREENSHOT_SECONDS ?? 150);
    if (shoot) this.timeout((seconds + 120) * 1000);
    const logs = new LogCapture();
    const demo: Demo = await startDemo({ port: 0, logDestination: logs, logLevel: 'warn' });
    cleanups.push(() => demo.stop());

    const { page, pageErrors } = await openPage();
    await logIn(page, demo.dashboardUrl, demo.adminToken);
    // Three upstreams: two simulated, one disabled for want of an API key.
    await page.locator('.up-card[data-upstream="steady"]').waitFor();
    await page.locator('.up-card[data-upstream="flaky"]').waitFor();
    const spare = page.locator('.up-card[data-upstream="spare"][data-state="disabled"]');
    await spare.waitFor();
    assert.match((await spare.textContent()) ?? '', /no API key/);

    // Traffic arrives on its own: finished requests from the demo's clients, and a moving chart.
    await page.locator('tr.req[data-state="ok"]').nth(2).waitFor({ timeout: 30_000 });
    const clients = await page.locator('tr.req td.c-client').allTextContents();
    assert.ok(
      clients.some((c) => demo.clients.some((k) => k.name === c)),
      `rows name the demo's clients: ${JSON.stringify(clients)}`,
    );
    await page.locator('#t-tokens-out', { hasText: /^[1-9]/ }).waitFor();
    await page.locator('#chart-rps canvas').waitFor();

    if (shoot) {
      // Let the charts fill, then wait for a moment that shows a cooldown.
      await page.waitForTimeout(seconds * 1000);
      await page
        .locator('.up-card[data-upstream="flaky"][data-state="cooling"]')
        .waitFor({ timeout: 90_000 });
      mkdirSync(path.dirname(DOCS_SHOT), { recursive: true });
      await page.screenshot({ path: DOCS_SHOT });
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-demo.png') });

    // The gateway goes away: the page keeps what it has, says so, and retries with a backoff.
    await demo.stop();
    await page.locator('#conn[data-state="retry"]').waitFor();
    assert.match((await page.locator('#conn-text').textContent()) ?? '', /retrying in \d+s/);
    assert.ok((await page.locator('tr.req').count()) > 0, 'the rows stay');
    assert.deepEqual(pageErrors, [], 'the page threw');
  });
});
