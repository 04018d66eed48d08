/**
 * The Redis of the `tapgate-redis` target: a redis-server of the bench's own on a free loopback port,
 * without persistence, pinned with the upstream and the load generator; and what it did per request,
 * from INFO (commands by name, client reads) and its CPU time from /proc.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type Child, freePort, groupCpuSeconds, LOAD_CORE, spawnPinned, waitForPort } from './procs.js';

/** The redis-server binary on the PATH, or undefined when it is not installed. */
export function findRedis(): string | undefined {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
    ? 'redis-server'
    : undefined;
}

export function redisVersion(bin: string): string {
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
}

/** Counters read at one moment: CPU seconds, calls per command, client reads. */
export interface RedisCounters {
  cpu: number;
  commands: Record<string, number>;
  /** INFO stats total_reads_processed: reads from client sockets, one per write a client made (or fewer). */
  reads: number;
}

/** What Redis did for each request of one measured run. */
export interface RedisUsage {
  requests: number;
  /** Every command Redis ran, those inside a script or a MULTI included. */
  commandsPerRequest: number;
  byCommand: Record<string, number>;
  /** Client reads per request: at most the round trips (writes a client sends together may arrive in one). */
  readsPerRequest: number;
  cpuUsPerRequest: number;
}

export interface BenchRedis {
  child: Child;
  url: string;
  counters(): Promise<RedisCounters>;
  close(): Promise<void>;
}

/** INFO's own calls are the bench's, not tapgate's. */
const OWN_COMMANDS = new Set(['info']);

function parseInfo(text: string): Omit<RedisCounters, 'cpu'> {
  const commands: Record<string, number> = {};
  let reads = Number.NaN;
  for (const line of text.split(/\r?\n/)) {
    const cmd = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (cmd !== null) {
      if (!OWN_COMMANDS.has(cmd[1]!)) commands[cmd[1]!] = Number(cmd[2]);
      continue;
    }
    const r = /^total_reads_processed:(\d+)/.exec(line);
    if (r !== null) reads = Number(r[1]);
  }
  return { commands, reads };
}

export async function startRedis(bin: string, tmp: string): Promise<BenchRedis> {
  const port = await freePort();
  const child = spawnPinned(
    'redis-server',
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--protected-mode',
      'yes',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    // With the upstream and the load generator: the proxy's core stays the proxy's alone.
    { core: LOAD_CORE, logFile: join(tmp, 'redis.log') },
  );
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await waitForPort(port, child);
    await client.connect();
  } catch (err) {
    client.disconnect();
    await child.stop('SIGKILL', 1000);
    throw err;
  }
  return {
    child,
    url: `redis://127.0.0.1:${port}`,
    async counters() {
      let info: string;
      try {
        info = await client.info('all');
      } catch (err) {
        const state = child.proc.exitCode ?? child.proc.signalCode;
        throw new Error(
          `Redis did not answer INFO (${(err as Error).message.slice(0, 100)})` +
            (state === null ? '' : `: redis-server exited (${state}); see redis.log`),
          { cause: err },
        );
      }
      return { cpu: groupCpuSeconds(child.pid), ...parseInfo(info) };
    },
    async close() {
      client.disconnect();
      await child.stop('SIGTERM', 5000);
    },
  };
}

/** The difference between two readings, per request. */
export function perRequest(before: RedisCounters, after: RedisCounters, requests: number): RedisUsage {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of Object.entries(after.commands)) {
    const d = calls - (before.commands[name] ?? 0);
    if (d <= 0) continue;
    byCommand[name] = d / requests;
    total += d;
  }
  return {
    requests,
    commandsPerRequest: total / requests,
    byCommand,
    readsPerRequest: (after.reads - before.reads) / requests,
    cpuUsPerRequest: (1e6 * (after.cpu - before.cpu)) / requests,
  };
}
