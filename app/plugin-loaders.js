// How the tapgate command imports a plugin named by path when it runs the transpiled sources
// (app/compiled-cache.js). tsx's loader is registered on the first plugin that needs it, not at
// start: its module hooks run in a thread of their own (~15 MB RSS). An .mjs plugin, plain
// JavaScript by its name, is imported as it is; any other goes through tsx, as it always did.
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

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
    if (!url.endsWith('.mjs')) return withLoaders(url);
    try {
      return await import(url);
    } catch (err) {
      // It imports TypeScript: 'tapgate', which the loaders resolve to the running core. Nothing of
      // it ran (a graph of static imports that fails to load is never evaluated); a new URL, as Node keeps the
      // failure for this one. A .ts file of its own stays refused: its failure is cached too.
      if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
      return withLoaders(`${url}?with-loaders`);
    }
  };
}
