// A module resolve hook (registered by app/plugin-loaders.js): a tapgate source that a plugin
// imports (core/index.ts as 'tapgate', or by relative path) resolves to its transpiled copy, the one
// the gateway runs, so a plugin shares the core's classes and state instead of loading a second core.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIRS = ['app/', 'core/', 'plugins/'];
let sources = '';
let compiled = '';

export function initialize(data) {
  sources = data.sources.endsWith('/') ? data.sources : `${data.sources}/`;
  compiled = data.compiled.endsWith('/') ? data.compiled : `${data.compiled}/`;
}

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  const { url } = result;
  if (!url.startsWith(sources) || !url.endsWith('.ts')) return result;
  const path = url.slice(sources.length);
  if (!DIRS.some((d) => path.startsWith(d))) return result;
  const target = `${compiled}${path.slice(0, -3)}.js`;
  if (!existsSync(fileURLToPath(target))) return result;
  return { url: target, format: 'module', shortCircuit: true };
}
