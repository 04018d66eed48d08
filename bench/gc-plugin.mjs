/**
 * A bench-only plugin, loaded by path from the bench's generated YAML (never shipped, never in
 * config.yaml). One local route, without client auth (the bench gateway listens on 127.0.0.1):
 * `GET /__bench/gc` runs a full GC (needs `node --expose-gc`), then answers process.memoryUsage().
 * An .mjs file, which the tapgate command imports as it is: a .ts or .js plugin would start tsx's
 * loader thread (~15 MB of RSS) in the gateway whose memory the bench measures.
 */
const NAME = 'bench-gc';
/** @type {import('../core/kernel/types.js').RouteMatch} */
const GC = { kind: 'bench.gc', proxy: false, auth: 'none' };

export default class BenchGcPlugin {
  static meta = { name: NAME };

  /** @param {import('../core/gateway.js').Gateway} gateway */
  apply(gateway) {
    gateway.hooks.matchRoute.tap(NAME, (ctx) => {
      return ctx.method === 'GET' && ctx.pathname === '/__bench/gc' ? GC : undefined;
    });
    gateway.hooks.request.tap(NAME, (ctx) => {
      if (ctx.route !== GC) return undefined;
      const gc = globalThis.gc;
      // Twice: the first pass can leave objects that only a second one frees (weak maps, finalizers).
      gc?.();
      gc?.();
      return { status: 200, body: { gc: gc !== undefined, ...process.memoryUsage() } };
    });
  }
}
