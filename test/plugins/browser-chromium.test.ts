/**
 * The browser tests' Chromium (test/helpers/browser.ts) on a machine with nothing but Node: the npm
 * build's binary must need, from the system, only what every Debian has (glibc, libgcc_s), the rest
 * coming from the libraries it ships; and it must render a loopback page.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { launchChromium, resolveChromium } from '../helpers/browser.js';

const execFileAsync = promisify(execFile);

/** Shared objects from libc6 and libgcc-s1 (libc6 depends on it): on every Debian, however minimal. */
const BASE_SYSTEM =
  /^(linux-vdso|ld-linux-x86-64|ld-linux-aarch64|libc|libm|libdl|libpthread|librt|libgcc_s)\.so/;

describe('the browser tests’ Chromium (npm build)', function () {
  // The first use on a machine unpacks ~190 MB.
  this.timeout(120_000);
  const saved = process.env.TAPGATE_CHROMIUM;
  afterEach(() => {
    if (saved === undefined) delete process.env.TAPGATE_CHROMIUM;
    else process.env.TAPGATE_CHROMIUM = saved;
  });

  it('links only its own libraries and the base system’s', async () => {
    delete process.env.TAPGATE_CHROMIUM;
    // With nothing chosen, the npm build comes before any system Chromium.
    const resolved = await resolveChromium();
    assert.equal(resolved.source, 'npm');
    const { stdout } = await execFileAsync('ldd', [resolved.executablePath], {
      env: { ...process.env, ...resolved.env },
    });
    const bundled = path.join(path.dirname(resolved.executablePath), 'lib') + '/';
    const fromSystem: string[] = [];
    let fromBundle = 0;
    for (const line of stdout.trim().split('\n')) {
      const [, name, target] = /^\s*(\S+)(?:\s+=>\s+(\S+))?/.exec(line) ?? [];
      assert.ok(name !== undefined && target !== 'not', `unresolved: ${line}`);
      if (target?.startsWith(bundled)) fromBundle++;
      else fromSystem.push(path.basename(name));
    }
    assert.ok(fromBundle >= 5, `NSS, NSPR and expat come from the package (${fromBundle} did)`);
    const extra = fromSystem.filter((lib) => !BASE_SYSTEM.test(lib));
    assert.deepEqual(extra, [], 'system libraries beyond glibc and libgcc_s');
  });

  it('renders a loopback page, with text and Intl dates', async () => {
    delete process.env.TAPGATE_CHROMIUM;
    const server = http
      .createServer((_req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(
          '<p id="t">hello</p><script>document.title = new Intl.DateTimeFormat(undefined, ' +
            "{ timeZone: 'UTC' }).format(0) + ' ' + navigator.language</script>",
        );
      })
      .listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { browser, resolved } = await launchChromium({ source: 'npm' });
    try {
      assert.equal(resolved.source, 'npm');
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      assert.equal(await page.locator('#t').textContent(), 'hello');
      assert.equal(await page.title(), '1/1/1970 en-US');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      server.close();
    }
  });

  it('TAPGATE_CHROMIUM=system skips the npm build', async () => {
    process.env.TAPGATE_CHROMIUM = 'system';
    await resolveChromium().then(
      (r) => assert.equal(r.source, 'system'),
      // A machine without a system Chromium: the error lists every name tried.
      (err: Error) => assert.match(err.message, /Tried:\n {2}system chromium: not in \/usr\/bin or PATH/),
    );
  });

  it('TAPGATE_CHROMIUM naming a missing binary fails with the path', async () => {
    process.env.TAPGATE_CHROMIUM = '/nonexistent/chromium';
    await assert.rejects(resolveChromium(), /TAPGATE_CHROMIUM=\/nonexistent\/chromium is not an executable/);
  });
});
