// How the tapgate command imports a plugin named by path when it runs the transpiled sources
// (app/compiled-cache.js). tsx's loader is registered on the first plugin that needs it, not at
// start: its module hooks run in a thread of their own (~30 MB RSS). An ES module in plain
// JavaScript (.mjs, or .js under "type": "module") is imported as it is.
import { existsSync, readFileSync } from 'node:fs';
import { register } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Node's rule: a .js file is an ES module when its nearest package.json says "type": "module". */
function isEsmJavaScript(file) {
  const ext = extname(file);
  if (ext === '.mjs') return true;
  if (ext !== '.js') return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        return JSON.parse(readFileSync(pkg, 'utf8')).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(dir) === dir) return false;
  }
}

async function registerLoaders(root, compiledDir) {
  const { register: registerEsm } = await import('tsx/esm/api');
  const { register: registerCommonJs } = await import('tsx/cjs/api');
  registerEsm({ tsconfig: join(root, 'tsconfig.json') });
  // A plugin outside a "type": "module" package is CommonJS to Node: tsx compiles its import/export.
  registerCommonJs();
  // Registered last, so it resolves first: 'tapgate' (core/index.ts) and any other tapgate source a
  // plugin imports is the transpiled module already running, not a second copy through tsx.
  register('./source-alias-hook.js', import.meta.url, {
    data: { sources: pathToFileURL(root).href, compiled: pathToFileURL(compiledDir).href },
  });
}

/** The importer for core/loader/plugin-import.ts. */
export function pluginImporter(root, compiledDir) {
  let ready;
  const withLoaders = async (url) => {
    ready ??= registerLoaders(root, compiledDir);
    await ready;
    return import(url);
  };
  return async (url) => {
    if (!isEsmJavaScript(fileURLToPath(url))) return withLoaders(url);
    try {
      return await import(url);
    } catch (err) {
      // It imports TypeScript ('tapgate' or a .ts file of its own). Nothing of it ran: a module graph
      // that fails to load is never evaluated. Under a new URL, as the failure stays cached for this one.
      if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
      return withLoaders(`${url}?with-loaders`);
    }
  };
}
