/**
 * `npm run soak [-- --duration 5m --concurrency 40 --fault-rate 0.1 --abort-rate 0.05 --seed 7 --rate 600]`:
 * a bounded mixed load against a real gateway (see bench/soak/run.ts), then the figures and a
 * PASS/FAIL line per target. Exits 1 when a target fails, 2 on a bad argument.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../core/config/units.js';
import { checks, render } from './soak/report.js';
import { DEFAULTS, runSoak } from './soak/run.js';

const HELP = `Usage: npm run soak [-- options]

  --duration D      how long the load runs after the warm-up (default 5m; e.g. 20s, 5m)
  --warmup D        load before the start figures are taken (default 5s)
  --concurrency N   clients sending at once (default ${DEFAULTS.concurrency})
  --fault-rate R    share of requests whose upstream fails, 0-1 (default ${DEFAULTS.faultRate})
  --abort-rate R    share of requests whose client hangs up, 0-1 (default ${DEFAULTS.abortRate})
  --seed N          the request mix's seed (default ${DEFAULTS.seed})
  --rate N          requests started per second at most, over all clients (default ${DEFAULTS.rate});
                    cooldowns last seconds, so an unbounded rate leaves failover nowhere to go

Targets: every request ends with a terminal answer (or was a deliberate client abort), the one its
fault calls for; every fault kind happened; RSS growth after GC ≤ 10 %; in flight, slots, queue,
connections and upstream requests 0 once the load stops; no handle left after close; no secret in
any answer or log line. The exit status is 1 when a target fails.`;

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n\n${HELP}\n`);
  process.exit(2);
}

function rate(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) fail(`--${name} must be a number from 0 to 1, got ${v}`);
  return n;
}

function duration(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const ms = parseDuration(v);
  if (ms !== undefined && ms > 0) return ms;
  fail(`--${name} must be a duration such as 20s or 5m, got ${v}`);
}

let args;
try {
  args = parseArgs({
    args: process.argv.slice(2),
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      'fault-rate': { type: 'string' },
      'abort-rate': { type: 'string' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (args.help) {
  process.stdout.write(HELP + '\n');
  process.exit(0);
}
const concurrency = args.concurrency === undefined ? DEFAULTS.concurrency : Number(args.concurrency);
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000)
  fail(`--concurrency must be a whole number from 1 to 1000, got ${args.concurrency}`);
const seed = args.seed === undefined ? DEFAULTS.seed : Number(args.seed);
if (!Number.isInteger(seed)) fail(`--seed must be a whole number, got ${args.seed}`);
const faultRate = rate('fault-rate', args['fault-rate'], DEFAULTS.faultRate);
const abortRate = rate('abort-rate', args['abort-rate'], DEFAULTS.abortRate);
const perSecond = args.rate === undefined ? DEFAULTS.rate : Number(args.rate);
if (!Number.isFinite(perSecond) || perSecond <= 0) fail(`--rate must be a positive number, got ${args.rate}`);
if (faultRate + abortRate > 1) fail('--fault-rate and --abort-rate add up to more than 1');

const report = await runSoak({
  ...DEFAULTS,
  durationMs: duration('duration', args.duration, 5 * 60_000),
  warmupMs: duration('warmup', args.warmup, DEFAULTS.warmupMs),
  concurrency,
  faultRate,
  abortRate,
  seed,
  rate: perSecond,
  progress: (line) => process.stderr.write(`soak: ${line}\n`),
});
const cs = checks(report);
process.stdout.write(render(report, cs) + '\n');
const failed = cs.filter((c) => !c.ok);
if (failed.length > 0)
  process.stdout.write(
    `\nsoak: ${failed.length} target(s) failed: ${failed.map((c) => c.name).join('; ')}\n`,
  );
process.exit(failed.length > 0 ? 1 : 0);
