/**
 * Allocated bytes, measured inside a proxy's own process: V8's sampling heap profiler through an
 * in-process node:inspector session, keeping the samples of objects a GC has already collected
 * (otherwise a short-lived request's garbage would vanish from the profile). The runner starts it
 * before a short load and stops it after; bytes ÷ requests is the allocation per request.
 *
 * Plain JavaScript (types in heap-sampler.d.mts): bench/gc-plugin.mjs runs inside tapgate, which
 * imports .mjs plugins without tsx's loader. Also used by the bare and undici pass-throughs.
 */

export const HEAP_START = '/__bench/heap/start';
export const HEAP_STOP = '/__bench/heap/stop';

/** @type {import('node:inspector/promises').Session | undefined} */
let session;
let interval = 0;

/** @param {number} samplingInterval bytes between samples on average (V8's default is 32768) */
export async function startHeapSampling(samplingInterval) {
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

export async function stopHeapSampling() {
  if (session === undefined) throw new Error('heap sampling was not started');
  const { profile } = await session.post('HeapProfiler.stopSampling');
  // The sum of the tree's self sizes, not of the samples' sizes: V8 scales each node's count up by
  // the odds of sampling an object that size, so small objects are not undercounted.
  let bytes = 0;
  const stack = [profile.head];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    bytes += n.selfSize;
    for (const c of n.children) stack.push(c);
  }
  const samples = profile.samples?.length ?? 0;
  return { bytes, samples, interval };
}

/** @param {string | undefined} url the interval from `?interval=N`; V8's default without one */
export function intervalFrom(url) {
  const m = /[?&]interval=(\d+)/.exec(url ?? '');
  return m === null ? 32768 : Number(m[1]);
}

/**
 * The two routes for a plain node:http server (the bare and undici pass-throughs): answers them
 * and returns true, or returns false for any other request (the proxy's own).
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export function heapRoute(req, res) {
  const url = req.url ?? '';
  if (req.method !== 'GET' || !url.startsWith('/__bench/heap/')) return false;
  /** @param {number} status @param {unknown} body */
  const reply = (status, body) => {
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
    (err) => reply(500, { error: String(err) }),
  );
  return true;
}
