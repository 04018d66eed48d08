#!/usr/bin/env node
// Entry point of the `tapgate` command. The sources are TypeScript, run through tsx's loader
// (esbuild), so there is no build step and no build output to keep.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';
import { register as registerCommonJs } from 'tsx/cjs/api';

// Until the CLI installs its own handlers (app/signals.ts): a SIGHUP or SIGUSR2 must not end a
// booting gateway, and SIGUSR1 must not open the inspector.
for (const signal of ['SIGHUP', 'SIGUSR1', 'SIGUSR2']) process.on(signal, () => {});

// Our tsconfig, not one found from the working directory: tapgate may run from anywhere.
register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
// A plugin module outside a "type": "module" package (a .ts or .js file in a bare folder) is CommonJS
// to Node: tsx's CommonJS loader compiles it, import/export included, as `node --import tsx` would.
registerCommonJs();
const { main } = await import('./cli.ts');
const code = await main(process.argv.slice(2));
// Let pino flush its last lines before leaving.
setImmediate(() => process.exit(code));
