/** The directory of transpiled sources for `root` (built if needed), or undefined: see compiled-cache.js. */
export function compiledSources(root: string): Promise<string | undefined>;
