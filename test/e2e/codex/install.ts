/**
 * Installing and finding Codex: `@openai/codex` at the pinned version in a cache directory, and the
 * native binary its launcher (`bin/codex.js`) would exec.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { log, REPO } from './common.js';

export const CODEX_VERSION = '0.169.0';
export const CACHE_DIR = path.resolve(
  process.env.TAPGATE_CODEX_DIR || path.join(REPO, 'node_modules/.cache/tapgate-codex'),
);

/** The launcher's own table (bin/codex.js): platform → optional dependency holding the binary. */
const PLATFORM_PACKAGES: Record<string, { pkg: string; triple: string }> = {
  'linux-x64': { pkg: '@openai/codex-linux-x64', triple: 'x86_64-unknown-linux-musl' },
  'linux-arm64': { pkg: '@openai/codex-linux-arm64', triple: 'aarch64-unknown-linux-musl' },
  'darwin-x64': { pkg: '@openai/codex-darwin-x64', triple: 'x86_64-apple-darwin' },
  'darwin-arm64': { pkg: '@openai/codex-darwin-arm64', triple: 'aarch64-apple-darwin' },
};

/** The native binary that `bin/codex.js` would exec, if the cache holds Codex at the pinned version. */
export function findCodex(): string | undefined {
  const launcherPkg = path.join(CACHE_DIR, 'node_modules/@openai/codex/package.json');
  if (!existsSync(launcherPkg)) return undefined;
  const version = (JSON.parse(readFileSync(launcherPkg, 'utf8')) as { version: string }).version;
  if (version !== CODEX_VERSION) {
    log(`the cache holds @openai/codex ${version}, not ${CODEX_VERSION}`);
    return undefined;
  }
  const platform = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (platform === undefined) throw new Error(`no Codex build for ${process.platform}-${process.arch}`);
  const bin = path.join(CACHE_DIR, 'node_modules', platform.pkg, 'vendor', platform.triple, 'bin', 'codex');
  return existsSync(bin) ? bin : undefined;
}

export function ensureCodex(): string {
  const found = findCodex();
  if (found !== undefined) {
    log(`using cached Codex ${CODEX_VERSION}: ${found}`);
    return found;
  }
  log(
    `Codex ${CODEX_VERSION} is not in ${CACHE_DIR}: installing it from the npm registry (~400 MB unpacked)`,
  );
  mkdirSync(CACHE_DIR, { recursive: true });
  const args = [
    'install',
    '--no-save',
    '--no-audit',
    '--no-fund',
    '--prefix',
    CACHE_DIR,
    `@openai/codex@${CODEX_VERSION}`,
  ];
  log(`$ npm ${args.join(' ')}`);
  const r = spawnSync('npm', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0)
    throw new Error(`npm install failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
  const bin = findCodex();
  if (bin === undefined)
    throw new Error(`npm installed @openai/codex, but no native binary was found under ${CACHE_DIR}`);
  log(`installed: ${bin}`);
  return bin;
}
