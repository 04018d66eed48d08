/**
 * What each soak request does: its route, whether it streams, the fault the soak upstream injects
 * (on the request's first attempt only, see fault-upstream.ts), and whether its client hangs up.
 * From these follows the one answer the client must get (`expected`).
 */

/** Faults the upstream injects before any output reached the client: the gateway fails over. */
export const PRE_OUTPUT_FAULTS = [
  'reset-before-headers',
  'http-429',
  'http-500',
  'close-after-headers',
  'stall-before-output',
] as const;

/** Faults after output reached the client: the stream must end in one response.failed. */
export const MID_STREAM_FAULTS = ['reset-mid-stream', 'stall-mid-stream', 'malformed-sse'] as const;

export type PreOutputFault = (typeof PRE_OUTPUT_FAULTS)[number];
export type MidStreamFault = (typeof MID_STREAM_FAULTS)[number];
export type Fault = 'none' | PreOutputFault | MidStreamFault;
export const FAULTS: readonly Fault[] = [...PRE_OUTPUT_FAULTS, ...MID_STREAM_FAULTS];

/**
 * Client hang-ups: right after sending the request; once the upstream has it (the gateway is
 * waiting for the upstream's head); after the first streamed delta.
 */
export const ABORTS = ['before-response', 'while-upstream-waits', 'mid-stream'] as const;
export type Abort = (typeof ABORTS)[number];

/** The `error.code` of the response.failed each mid-stream fault must produce. */
export const MID_STREAM_CODE: Readonly<Record<MidStreamFault, string>> = {
  'reset-mid-stream': 'server_error', // upstream connection lost
  'stall-mid-stream': 'upstream_error', // idle timeout
  'malformed-sse': 'upstream_error', // not JSON
};

export interface Plan {
  /** Sent as `x-request-id`, so the upstream and the client can meet on it. */
  id: string;
  method: 'GET' | 'POST';
  path: string;
  stream: boolean;
  model: string;
  fault: Fault;
  abort: Abort | undefined;
}

const STREAM_PATHS = ['/v1/responses', '/responses', '/backend-api/codex/responses'];
const JSON_PATHS = [...STREAM_PATHS, '/v1/responses/compact'];
const MODELS_PATHS = ['/v1/models', '/models'];
/**
 * A Retry-After cools one account for one model. With the load spread over a few models, a request
 * almost never finds every other account cooling for its model at once (it would then get the
 * first attempt's error, correctly, as there is no account left to fail over to).
 */
const MODELS = ['gpt-soak-a', 'gpt-soak-b', 'gpt-soak-c', 'gpt-soak-d'];

/** A small seeded PRNG (mulberry32): the same seed gives the same mix. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Mix {
  /** Share of requests whose upstream fails (0–1). */
  faultRate: number;
  /** Share of requests whose client hangs up (0–1). */
  abortRate: number;
}

export class Planner {
  private n = 0;
  private readonly random: () => number;

  constructor(
    private readonly mix: Mix,
    seed: number,
    private readonly prefix = 'soak',
  ) {
    this.random = prng(seed);
  }

  private pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)]!;
  }

  next(): Plan {
    const id = `${this.prefix}-${++this.n}`;
    const r = this.random();
    const model = this.pick(MODELS);
    const base = { id, model, abort: undefined };
    if (r < 0.03)
      return { ...base, method: 'GET', path: this.pick(MODELS_PATHS), stream: false, fault: 'none' };
    const stream = r < 0.73;
    const path = this.pick(stream ? STREAM_PATHS : JSON_PATHS);
    const roll = this.random();
    if (roll < this.mix.abortRate) {
      const abort = this.pick(stream ? ABORTS : ABORTS.filter((a) => a !== 'mid-stream'));
      return { ...base, method: 'POST', path, stream, fault: 'none', abort };
    }
    const fault: Fault =
      roll < this.mix.abortRate + this.mix.faultRate
        ? this.pick(stream ? FAULTS : PRE_OUTPUT_FAULTS)
        : 'none';
    return { ...base, method: 'POST', path, stream, fault };
  }
}

/** The one client-visible outcome a plan must have (see client.ts for the outcome names). */
export function expected(plan: Plan): string {
  if (plan.abort !== undefined) return `client abort (${plan.abort})`;
  const mid = MID_STREAM_CODE[plan.fault as MidStreamFault];
  return mid === undefined ? 'ok' : `response.failed ${mid}`;
}
