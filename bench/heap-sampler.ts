/**
 * Allocated bytes, measured inside a proxy's own process: V8's sampling heap profiler through an
 * in-process node:inspector session, keeping the samples of objects a GC has already collected
 * (otherwise a short-lived request's garbage would vanish from the profile). The runner starts it
 * before a short load and stops it after; bytes ÷ requests is the allocation per request.
 *
 * Used by bench/gc-plugin.ts (tapgate) and by the bare and undici pass-throughs (`heapRoute`).
 */
import type http from 'node:http';
import type { Session } from 'node:inspector/promises';

export const HEAP_START = '/__bench/heap/start';
export const HEAP_STOP = '/__bench/heap/stop';

export interface HeapSample {
  /** V8's estimate of every byte allocated while sampling (each node's selfSize is already scaled). */
  bytes: number;
  samples: number;
  interval: number;
}

interface ProfileNode {
  selfSize: number;
  children: ProfileNode[];
}

let session: Session | undefined;
let interval = 0;

/** `interval`: bytes between samples on average (V8's default is 32768). */
export async function startHeapSampling(samplingInterval: number): Promise<void> {
  if (session === undefined) {
    // Loaded on first use: until the bench starts sampling, the proxy runs without the inspector.
    const inspector = await import('node:inspector/promises');
    session = new inspector.Session();
    session.connect();
    await session.post('HeapProfiler.enable');
  }
  interval = samplingInterval;
  await session.post('HeapProfiler.startSampling', {
    samplingInterval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

export async function stopHeapSampling(): Promise<HeapSample> {
  if (session === undefined) throw new Error('heap sampling was not started');
  const { profile } = await session.post('HeapProfiler.stopSampling');
  // The sum of the tree's self sizes, not of the samples' sizes: V8 scales each node's count up by
  // the odds of sampling an object that size, so small objects are not undercounted.
  let bytes = 0;
  const stack: ProfileNode[] = [profile.head];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    bytes += n.selfSize;
    for (const c of n.children) stack.push(c);
  }
  // `samples` is in the protocol since V8 7.x, not in @types/node's SamplingHeapProfile.
  const samples = (profile as { samples?: unknown[] }).samples?.length ?? 0;
  return { bytes, samples, interval };
}

/** The interval from `?interval=N` on the start route; V8's default without one. */
export function intervalFrom(url: string | undefined): number {
  const m = /[?&]interval=(\d+)/.exec(url ?? '');
  return m === null ? 32768 : Number(m[1]);
}

/**
 * The two routes for a plain node:http server (the bare and undici pass-throughs): answers them
 * and returns true, or returns false for any other request (the proxy's own).
 */
export function heapRoute(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const url = req.url ?? '';
  if (req.method !== 'GET' || !url.startsWith('/__bench/heap/')) return false;
  const reply = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const path = url.split('?')[0];
  const work =
    path === HEAP_START
      ? startHeapSampling(intervalFrom(url)).then(() => ({ started: true }))
      : path === HEAP_STOP
        ? stopHeapSampling()
        : Promise.reject(new Error(`unknown route ${path}`));
  work.then(
    (body) => reply(200, body),
    (err: unknown) => reply(500, { error: String(err) }),
  );
  return true;
}
