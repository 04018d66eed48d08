/**
 * `server.workers`: several processes serve one port through node:cluster, so every core works.
 * The primary validates the config once, forks the workers, forwards SIGTERM/SIGINT so each drains
 * its own requests, and restarts a worker that dies on its own. Pool state is each worker's own with
 * `state.store: memory`, and shared by all of them (and other instances) with `redis`; see the README.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { GatewayConfig } from '../core/config/config-schema.js';

/** Signals that stop the gateway gracefully (SIGQUIT as nginx reads it: finish what is running). */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

/** The primary's request to a worker: drain and exit, like a first SIGTERM. */
export const SHUTDOWN = 'tapgate:shutdown';
/** The primary's request to a worker: reload the config (SIGHUP or --watch reached the primary). */
export const RELOAD = 'tapgate:reload';

/** Asks every live worker to reload; each logs its own result. Returns how many were asked. */
export function reloadWorkers(): number {
  let n = 0;
  for (const w of Object.values(cluster.workers ?? {})) {
    if (w === undefined || !w.isConnected()) continue;
    w.send(RELOAD);
    n++;
  }
  return n;
}

export function workerCount(config: GatewayConfig): number {
  const w = config.server.workers;
  return w === 'auto' ? availableParallelism() : w;
}

/**
 * Why this config cannot run in several processes, or undefined. What an upstream type rules out
 * (its `multiProcess` reason) the gateway checks when it boots with `processes` > 1.
 */
export function multiProcessProblem(config: GatewayConfig): string | undefined {
  if (config.server.port === 0)
    return 'server.workers > 1 needs a fixed server.port (with port 0 each process would get its own)';
  return undefined;
}

/** Runs the primary: forks `count` workers and resolves with the exit code once they are all gone. */
export function runPrimary(count: number, log: (msg: string) => void): Promise<number> {
  // The kernel spreads connections: the primary stays out of the request path.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  let failures = 0;
  // Counted here: cluster.workers keeps a worker that exited until its channel's 'disconnect', which
  // may come after its 'exit', so the last exit could otherwise find a worker still listed.
  const live = new Set<number>();
  const fork = () => live.add(cluster.fork().id);
  for (let i = 0; i < count; i++) fork();
  return new Promise((done) => {
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker.id);
      if (stopping) {
        if (code !== 0) failures++;
        if (live.size === 0) done(failures > 0 ? 1 : 0);
        return;
      }
      log(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
      // Kept referenced: with every worker gone, this timer is what keeps the primary running.
      const timer = setTimeout(() => {
        respawns.delete(timer);
        fork();
      }, 1000);
      respawns.add(timer);
    });
    const respawns = new Set<NodeJS.Timeout>();
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const t of respawns) clearTimeout(t);
      log(`${signal}: stopping ${live.size} workers`);
      if (live.size === 0) done(failures > 0 ? 1 : 0);
      // A message, not a signal: after a terminal's Ctrl-C the workers got SIGINT already, and a
      // second signal would make them skip the drain.
      for (const w of Object.values(cluster.workers ?? {})) w?.send(SHUTDOWN);
    };
    for (const signal of STOP_SIGNALS) process.on(signal, () => stop(signal));
  });
}
