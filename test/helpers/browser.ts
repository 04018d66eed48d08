/**
 * Finds a Chromium for the browser tests and launches it through playwright-core, so a fresh machine
 * needs nothing but Node: the devDependency @sparticuz/chromium ships a headless Chromium inside the
 * npm package (no download at install time), which this helper inflates once per version into the
 * temp folder. Order: TAPGATE_CHROMIUM (a path, or `npm` / `system` to force a source), then the npm
 * build, then a system Chromium.
 *
 * The npm build is made for Amazon Linux: its binary links NSS, NSPR and expat, which it bundles in
 * al2023.tar.br but only unpacks on Lambda. Here they are unpacked beside the binary and put on
 * LD_LIBRARY_PATH, so what the binary needs from the system is glibc and libgcc_s alone.
 */
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  readFileSync,
} from 'node:fs';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createBrotliDecompress } from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';

export type ChromiumSource = 'env' | 'npm' | 'system';

export interface ResolvedChromium {
  source: ChromiumSource;
  executablePath: string;
  /** Extra environment the binary needs (the npm build's library and font folders). */
  env: Record<string, string>;
}

export interface ResolveChromiumOptions {
  /** Only this source (overrides TAPGATE_CHROMIUM=npm|system); a path in TAPGATE_CHROMIUM still wins. */
  source?: 'npm' | 'system';
}

/**
 * This machine (and CI) has no network beyond loopback: no background fetches of any kind. Playwright
 * adds `--headless` by itself and gives every launch a fresh, empty `--user-data-dir` of its own.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const execFileAsync = promisify(execFile);
const SYSTEM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
const NPM_PACKAGE = '@sparticuz/chromium';

/** Resolves a Chromium (see the file comment for the order); throws listing everything tried. */
export async function resolveChromium(opts: ResolveChromiumOptions = {}): Promise<ResolvedChromium> {
  const fromEnv = process.env.TAPGATE_CHROMIUM?.trim();
  if (fromEnv && fromEnv !== 'npm' && fromEnv !== 'system') {
    if (!isExecutable(fromEnv)) throw new Error(`TAPGATE_CHROMIUM=${fromEnv} is not an executable file`);
    return { source: 'env', executablePath: fromEnv, env: {} };
  }
  const only = opts.source ?? (fromEnv as 'npm' | 'system' | undefined);
  const tried: string[] = [];
  if (only !== 'system') {
    try {
      return await npmChromium();
    } catch (err) {
      tried.push(`npm package ${NPM_PACKAGE}: ${(err as Error).message}`);
    }
  }
  if (only !== 'npm') {
    const found = systemChromium(tried);
    if (found) return found;
  }
  throw new Error(
    'no Chromium for the browser tests. Tried:\n  ' +
      tried.join('\n  ') +
      `\nRun \`npm install\` (the devDependency ${NPM_PACKAGE} ships one), install a system Chromium, ` +
      'or set TAPGATE_CHROMIUM to a Chromium binary',
  );
}

/** Resolves a Chromium and launches it headless with the loopback-only flags. */
export async function launchChromium(
  opts: ResolveChromiumOptions = {},
): Promise<{ browser: Browser; resolved: ResolvedChromium }> {
  const resolved = await resolveChromium(opts);
  const browser = await chromium.launch({
    executablePath: resolved.executablePath,
    env: { ...process.env, ...resolved.env },
    args: CHROMIUM_ARGS,
  });
  return { browser, resolved };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function systemChromium(tried: string[]): ResolvedChromium | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const name of SYSTEM_NAMES) {
    const hit = ['/usr/bin', ...dirs].map((d) => path.join(d, name)).find(isExecutable);
    if (hit) return { source: 'system', executablePath: hit, env: {} };
    tried.push(`system ${name}: not in /usr/bin or PATH`);
  }
  return undefined;
}

/** The npm build, inflated (once per package version) into <tmp>/tapgate-chromium-<version>. */
async function npmChromium(): Promise<ResolvedChromium> {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(NPM_PACKAGE);
  } catch {
    throw new Error('not installed');
  }
  // The entry sits a folder or two below the package root, depending on the version's build layout.
  let pkgDir = path.dirname(entry);
  while (!existsSync(path.join(pkgDir, 'package.json')) || !existsSync(path.join(pkgDir, 'bin'))) {
    if (path.dirname(pkgDir) === pkgDir) throw new Error(`no package folder above ${entry}`);
    pkgDir = path.dirname(pkgDir);
  }
  const { version } = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = path.join(tmpdir(), `tapgate-chromium-${version}`);
  if (!existsSync(path.join(dir, '.complete'))) await inflate(path.join(pkgDir, 'bin'), dir);
  return {
    source: 'npm',
    executablePath: path.join(dir, 'chromium'),
    env: {
      LD_LIBRARY_PATH: [path.join(dir, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      FONTCONFIG_FILE: path.join(dir, 'fonts.conf'),
      // Its bundled ICU turns the POSIX locales (LANG=C.UTF-8, a bare Debian's) into `en-US@posix`,
      // which the page's Intl.DateTimeFormat rejects: name a real one.
      LANG: 'en_US.UTF-8',
      LC_ALL: 'en_US.UTF-8',
    },
  };
}

/**
 * Unpacks the binary, its Amazon Linux libraries and its fonts into a private folder, then renames it
 * into place, so test processes racing on a cold machine never run a half-written binary. Swiftshader
 * (software WebGL) is left out: the tests run with --disable-gpu.
 */
async function inflate(binDir: string, dir: string): Promise<void> {
  const work = `${dir}.${process.pid}.tmp`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const exe = path.join(work, 'chromium');
    await pipeline(
      createReadStream(path.join(binDir, 'chromium.br')),
      createBrotliDecompress(),
      createWriteStream(exe),
    );
    await chmod(exe, 0o755);
    await untarBrotli(path.join(binDir, 'al2023.tar.br'), work); // lib/libnss3.so, …
    await untarBrotli(path.join(binDir, 'fonts.tar.br'), work); // fonts/Open_Sans/*.ttf
    // The package's fonts.conf names Lambda's folders; this one names ours.
    await writeFile(
      path.join(work, 'fonts.conf'),
      '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n' +
        `  <dir>${path.join(dir, 'fonts')}</dir>\n  <cachedir>${path.join(dir, 'fonts-cache')}</cachedir>\n` +
        '</fontconfig>\n',
    );
    await writeFile(path.join(work, '.complete'), '');
    // A folder left half-written by a killed run is replaced.
    if (existsSync(dir) && !existsSync(path.join(dir, '.complete')))
      await rm(dir, { recursive: true, force: true });
    await rename(work, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another process finished first: use its copy.
      if (!existsSync(path.join(dir, '.complete'))) throw err;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Brotli by node, then `tar -xf` (tar is essential on Debian; node has no tar reader). Through a file,
 * not a pipe: tar stops reading at the archive's end marker, before the stream's padding.
 */
async function untarBrotli(archive: string, into: string): Promise<void> {
  const plain = path.join(into, path.basename(archive, '.br'));
  await pipeline(createReadStream(archive), createBrotliDecompress(), createWriteStream(plain));
  try {
    await execFileAsync('tar', ['-xf', plain, '-C', into, '--no-same-owner']);
  } finally {
    await rm(plain, { force: true });
  }
}
