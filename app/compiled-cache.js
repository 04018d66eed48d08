// The sources (app/, core/, plugins/) transpiled once into plain JavaScript, in a cache under
// node_modules/.cache/tapgate/: running that costs ~30 MB less RSS than tsx's loader, whose module
// hooks run in a thread of their own. Keyed by the sources' content, so an edit rebuilds it on the
// next start: no build step to remember. Plain JavaScript itself: it runs before any TypeScript can.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const DIRS = ['app', 'core', 'plugins'];
const requireHere = createRequire(import.meta.url);
/** Bumped when what the build writes changes shape. */
const FORMAT = 1;
/** An entry no process started from for this long is removed (one still running may load lazily from it). */
const STALE_MS = 24 * 60 * 60 * 1000;

function sourceFiles(root) {
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'public') walk(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
    }
  };
  for (const dir of DIRS) walk(join(root, dir));
  return out.sort();
}

/** The cache entry's name: everything the output depends on. */
function cacheKey(root, files, esbuildVersion) {
  const hash = createHash('sha256');
  hash.update(`${FORMAT}\0${esbuildVersion}\0${root}\0`);
  for (const file of ['package.json', 'tsconfig.json'])
    hash.update(readFileSync(join(root, file))).update('\0');
  for (const file of files)
    hash
      .update(`${relative(root, file)}\0`)
      .update(readFileSync(file))
      .update('\0');
  return hash.digest('hex').slice(0, 20);
}

async function build(esbuild, root, files, out) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  // What the sources read from their package.json (cli.ts: the version), and "type": "module".
  mkdirSync(out, { recursive: true });
  // Our tsconfig, as tsx reads it: class fields and import elision follow its options.
  const tsconfigRaw = readFileSync(join(root, 'tsconfig.json'), 'utf8');
  writeFileSync(
    join(out, 'package.json'),
    JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' }),
  );
  await Promise.all(
    files.map(async (file) => {
      const target = join(out, relative(root, file)).replace(/\.ts$/, '.js');
      const result = await esbuild.transform(readFileSync(file, 'utf8'), {
        loader: 'ts',
        tsconfigRaw,
        format: 'esm',
        target: 'node20',
        sourcefile: file,
        sourcemap: 'external',
        // import.meta.url still names the source file: assets beside it (the dashboard's public/)
        // and createRequire() resolve from there, as without the cache.
        define: { 'import.meta.url': JSON.stringify(pathToFileURL(file).href) },
      });
      mkdirSync(join(target, '..'), { recursive: true });
      const name = target.slice(target.lastIndexOf('/') + 1);
      // Read only under --enable-source-maps: stack traces then name the .ts lines.
      writeFileSync(target, `${result.code}//# sourceMappingURL=${name}.map\n`);
      writeFileSync(`${target}.map`, result.map);
    }),
  );
}

/**
 * Touched now and every few hours while this process runs: its age is the time since a process
 * last used it, and a running gateway may still import from it (a plugin added by a reload).
 */
function keepFresh(dir) {
  const touch = () => {
    try {
      const now = new Date();
      utimesSync(dir, now, now);
    } catch {
      // Removed by hand: nothing to keep.
    }
  };
  touch();
  setInterval(touch, STALE_MS / 4).unref();
}

function prune(cacheDir, keep) {
  const now = Date.now();
  for (const name of readdirSync(cacheDir)) {
    if (name === keep) continue;
    const path = join(cacheDir, name);
    try {
      if (now - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // Another process pruned it first.
    }
  }
}

/**
 * The directory holding the transpiled sources (its app/cli.js is the entry point), built first if
 * needed; undefined when it cannot be (no esbuild, a read-only install): the caller runs the sources
 * through tsx instead.
 */
export async function compiledSources(root) {
  const cacheDir = join(root, 'node_modules', '.cache', 'tapgate');
  try {
    // Its version from its package.json: the module itself (~13 MB of RSS) only loads to build.
    const esbuildPkg = requireHere.resolve('esbuild/package.json');
    const files = sourceFiles(root);
    const key = cacheKey(root, files, JSON.parse(readFileSync(esbuildPkg, 'utf8')).version);
    const dir = join(cacheDir, key);
    if (!existsSync(dir)) {
      // Built aside and renamed into place: a process starting meanwhile never sees half an entry,
      // and of two building at once, the first rename wins and the other's copy is dropped.
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      const esbuild = await import('esbuild');
      try {
        await build(esbuild, root, files, tmp);
      } finally {
        await esbuild.stop();
      }
      try {
        renameSync(tmp, dir);
      } catch {
        rmSync(tmp, { recursive: true, force: true });
        statSync(dir);
      }
      prune(cacheDir, key);
    }
    keepFresh(dir);
    return dir;
  } catch {
    return undefined;
  }
}
