/**
 * A bench-only plugin, loaded by path from the bench's generated YAML (never shipped, never in
 * config.yaml). Local routes, without client auth (the bench gateway listens on 127.0.0.1):
 * `GET /__bench/gc` runs a full GC (needs `node --expose-gc`), then answers process.memoryUsage();
 * `GET /__bench/heap/start[?interval=N]` and `GET /__bench/heap/stop` run V8's sampling heap
 * profiler in this process (bench/heap-sampler.ts), as the bare and undici pass-throughs do.
 */
import type { Gateway } from '../core/gateway.js';
import type { RouteMatch } from '../core/kernel/types.js';
import { HEAP_START, HEAP_STOP, intervalFrom, startHeapSampling, stopHeapSampling } from './heap-sampler.js';

const NAME = 'bench-gc';
const GC: RouteMatch = { kind: 'bench.gc', proxy: false, auth: 'none' };
const START: RouteMatch = { kind: 'bench.heap.start', proxy: false, auth: 'none' };
const STOP: RouteMatch = { kind: 'bench.heap.stop', proxy: false, auth: 'none' };
const ROUTES = new Map([
  ['/__bench/gc', GC],
  [HEAP_START, START],
  [HEAP_STOP, STOP],
]);

export default class BenchGcPlugin {
  static readonly meta = { name: NAME };

  apply(gateway: Gateway): void {
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
      const gc = (globalThis as { gc?: () => void }).gc;
      // Twice: the first pass can leave objects that only a second one frees (weak maps, finalizers).
      gc?.();
      gc?.();
      return { status: 200, body: { gc: gc !== undefined, ...process.memoryUsage() } };
    });
  }
}
