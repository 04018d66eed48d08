#!/usr/bin/env node
// Entry point of the `tapgate` command. The sources are TypeScript, with no build step: they run
// transpiled once into a cache (app/compiled-cache.js, rebuilt when a source changes), or, where
// that cache cannot be written, through tsx's loader (esbuild).
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { compiledSources } from './compiled-cache.js';
import { capYoungGeneration } from './young-generation.js';

// 2 × 4 MB, as `node --max-semi-space-size=4` would (given on node's command line, that one is kept).
capYoungGeneration(8);

// Until the CLI installs its own handlers (app/signals.ts): a SIGHUP or SIGUSR2 must not end a
// booting gateway, and SIGUSR1 must not open the inspector.
for (const signal of ['SIGHUP', 'SIGUSR1', 'SIGUSR2']) process.on(signal, () => {});

const root = fileURLToPath(new URL('..', import.meta.url));
// TAPGATE_NO_CACHE=1: the sources through tsx, as `node --import tsx` runs them.
const compiled = process.env.TAPGATE_NO_CACHE === '1' ? undefined : await compiledSources(root);
let main;
if (compiled !== undefined) {
  const load = (path) => import(pathToFileURL(join(compiled, path)).href);
  const { setPluginImporter } = await load('core/loader/plugin-import.js');
  const { pluginImporter } = await import('./plugin-loaders.js');
  setPluginImporter(pluginImporter(root, compiled));
  ({ main } = await load('app/cli.js'));
} else {
  const { register } = await import('tsx/esm/api');
  const { register: registerCommonJs } = await import('tsx/cjs/api');
  // Our tsconfig, not one found from the working directory: tapgate may run from anywhere.
  register({ tsconfig: join(root, 'tsconfig.json') });
  // A plugin module outside a "type": "module" package (a .ts or .js file in a bare folder) is
  // CommonJS to Node: tsx's CommonJS loader compiles it, import/export included, as `node --import tsx` would.
  registerCommonJs();
  ({ main } = await import('./cli.ts'));
}
const code = await main(process.argv.slice(2));
// Let pino flush its last lines before leaving.
setImmediate(() => process.exit(code));
