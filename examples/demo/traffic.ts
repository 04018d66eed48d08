/**
 * The demo's traffic: a few concurrent openai-SDK clients, each with its own client key, sending a mix
 * of streamed and plain Responses calls (and now and then a compaction, or a stream it gives up on)
 * through the gateway, with a pause between calls so the rate stays bounded. Loopback only.
 */
import OpenAI from 'openai';

export interface TrafficClient {
  /** The client key's name in auth.keys: what the dashboard shows. */
  name: string;
  key: string;
}

export interface TrafficOptions {
  /** The gateway's origin, e.g. http://127.0.0.1:8788. */
  baseUrl: string;
  clients: TrafficClient[];
  /** Concurrent callers (default 4). */
  concurrency?: number;
  /** Pause between one caller's calls, ms (default [300, 2000]). */
  pauseMs?: [number, number];
  models?: string[];
}

export interface Traffic {
  stats: { sent: number; ok: number; failed: number; aborted: number };
  /** Stops every caller and waits for them (in-flight calls are aborted). */
  stop(): Promise<void>;
}

const PROMPTS = [
  'Summarise the last commit in one sentence.',
  'Write a unit test for the parser.',
  'Why does the stream end without response.completed?',
  'Rename this variable everywhere it is used.',
  'Explain this stack trace.',
  'Suggest a better name for this function.',
];

const rand = (min: number, max: number): number => min + Math.random() * (max - min);
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

export function startTraffic(opts: TrafficOptions): Traffic {
  const stop = new AbortController();
  const stats: Traffic['stats'] = { sent: 0, ok: 0, failed: 0, aborted: 0 };
  const models = opts.models ?? ['gpt-5.5', 'gpt-5.5', 'gpt-5.5-mini'];
  const [pauseMin, pauseMax] = opts.pauseMs ?? [300, 2000];
  const sdks = new Map(
    opts.clients.map((c) => [
      c.name,
      new OpenAI({ baseURL: opts.baseUrl + '/v1', apiKey: c.key, maxRetries: 0, timeout: 120_000 }),
    ]),
  );

  async function call(): Promise<void> {
    const client = sdks.get(pick(opts.clients).name)!;
    const model = pick(models);
    const input = pick(PROMPTS);
    const roll = Math.random();
    // This call's own signal: the demo stopping, or (sometimes) the caller losing patience.
    const own = new AbortController();
    const onStop = () => own.abort();
    stop.signal.addEventListener('abort', onStop, { once: true });
    const impatient = roll < 0.04 ? setTimeout(() => own.abort(), rand(400, 1500)) : undefined;
    stats.sent++;
    try {
      if (roll < 0.08) {
        await client.responses.compact({ model, input }, { signal: own.signal });
      } else if (roll < 0.35) {
        await client.responses.create({ model, input }, { signal: own.signal });
      } else {
        const stream = await client.responses.create({ model, input, stream: true }, { signal: own.signal });
        let failed = false;
        for await (const event of stream) if (event.type === 'response.failed') failed = true;
        if (failed) {
          stats.failed++;
          return;
        }
      }
      stats.ok++;
    } catch {
      if (own.signal.aborted) stats.aborted++;
      else stats.failed++;
    } finally {
      clearTimeout(impatient);
      stop.signal.removeEventListener('abort', onStop);
    }
  }

  async function caller(): Promise<void> {
    // Spread the first calls out.
    await sleep(rand(0, 1500), stop.signal);
    while (!stop.signal.aborted) {
      await call();
      await sleep(rand(pauseMin, pauseMax), stop.signal);
    }
  }

  const callers = Array.from({ length: opts.concurrency ?? 4 }, () => caller());
  return {
    stats,
    stop: async () => {
      stop.abort();
      await Promise.allSettled(callers);
    },
  };
}
