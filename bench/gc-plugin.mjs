/**
 * A bench-only plugin, loaded by path from the bench's generated YAML (never shipped, never in
/**
 * A bench-only plugin, loaded by path from the bench's generated YAML (never shipped, never in
 * config.yaml). Local routes, without client auth (the bench gateway listens on 127.0.0.1):
 * `GET /__bench/gc` runs a full GC (needs `node --expose-gc`), then answers process.memoryUsage();
 * `GET /__bench/heap/start[?interval=N]` and `GET /__bench/heap/stop` run V8's sampling heap
 * profiler in this process (bench/heap-sampler.mjs), as the bare and undici pass-throughs do.
 * An .mjs file, which the tapgate command imports as it is: a .ts or .js plugin would start tsx's
 * loader thread (~15 MB of RSS) in the gateway whose memory the bench measures.
 */
import { HEAP_START, HEAP_STOP, intervalFrom, startHeapSampling, stopHeapSampling } from './heap-sampler.mjs';

const NAME = 'bench-gc';
/** @type {import('../core/kernel/types.js').RouteMatch} */
const GC = { kind: 'bench.gc', proxy: false, auth: 'none' };
/** @type {import('../core/kernel/types.js').RouteMatch} */
const START = { kind: 'bench.heap.start', proxy: false, auth: 'none' };
/** @type {import('../core/kernel/types.js').RouteMatch} */
const STOP = { kind: 'bench.heap.stop', proxy: false, auth: 'none' };
const ROUTES = new Map([
  ['/__bench/gc', GC],
  [HEAP_START, START],
  [HEAP_STOP, STOP],
]);

export default class BenchGcPlugin {
  static meta = { name: NAME };

  /** @param {import('../core/gateway.js').Gateway} gateway */
  apply(gateway) {
    gateway.hooks.matchRoute.tap(NAME, (ctx) => {
      return ctx.method === 'GET' ? ROUTES.get(ctx.pathname) : undefined;
    });
    gateway.hooks.request.tapPromise(NAME, async (ctx) => {
      if (ctx.route === START) {
        await startHeapSampling(intervalFrom(ctx.search));
        return { status: 200, body: { started: true } };
      }
      if (ctx.route === STOP) return { status: 200, body: { ...(await stopHeapSampling()) } };
      if (ctx.route !== GC) return undefined;
      const gc = globalThis.gc;
      // Twice: the first pass can leave objects that only a second one frees (weak maps, finalizers).
      gc?.();
      gc?.();
      return { status: 200, body: { gc: gc !== undefined, ...process.memoryUsage() } };
    });
  }
}
