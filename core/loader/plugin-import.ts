/**
 * How the plugin loader imports a plugin module named by path. By default, this process's own
 * import(). The tapgate command, when it runs transpiled sources (app/compiled-cache.js), sets an
 * importer that registers tsx's loader first, and only then: a config without such plugins never
 * starts tsx's loader thread.
 */
export type ModuleImporter = (url: string) => Promise<unknown>;

let importer: ModuleImporter = (url) => import(url);

export function setPluginImporter(next: ModuleImporter): void {
  importer = next;
}

export function importPluginModule(url: string): Promise<unknown> {
  return importer(url);
}
