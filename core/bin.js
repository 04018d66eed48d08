#!/usr/bin/env node
// Entry point of the `tapgate` command. The sources are TypeScript, run through tsx's loader
// (esbuild), so there is no build step and no build output to keep.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
const code = await main(process.argv.slice(2));
// Let pino flush its last lines before leaving.
setImmediate(() => process.exit(code));
