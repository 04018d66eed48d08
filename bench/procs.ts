/**
 * Child processes of the bench: each one pinned to a core with `taskset` (when present), in its own
 * process group, and killed when the runner exits for any reason (normal end, error, Ctrl-C).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';

export const HAS_TASKSET = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
export const CORES = (() => {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return 1;
  }
})();
/** Pinning needs two cores: the proxy under test alone on core 0, everything else on core 1. */
export const PINNED = HAS_TASKSET && CORES >= 2;
export const PROXY_CORE = 0;
export const LOAD_CORE = 1;

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Where its stderr (and stdout, unless redirected) goes. */
  logFile: string;
  exited: Promise<number | null>;
  /** Signal the group, wait up to `ms`, then SIGKILL it. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
}

const live = new Set<Child>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

let hooked = false;
/** Every child dies with the runner: on exit, on a signal, on an uncaught error. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) killGroup(c.pid, 'SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      process.exit(130);
    });
  }
}

/** Pins this process (every thread) to a core. */
export function pinSelf(core: number): void {
  if (PINNED) execFileSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore' });
}

export interface SpawnOptions {
  /** The core to pin to, or 'all': every core (a cluster spread over the machine). */
  core: number | 'all';
  /** Redirect stdout to this file (tapgate's log); otherwise stdout goes to logFile too. */
  stdoutFile?: string;
  logFile: string;
  /** Give the child a stdin pipe; the bench's own helpers exit when it closes. */
  stdinPipe?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function spawnPinned(name: string, command: string, args: string[], opts: SpawnOptions): Child {
  hookExit();
  const err = openSync(opts.logFile, 'a');
  const out = opts.stdoutFile === undefined ? err : openSync(opts.stdoutFile, 'a');
  const cores = opts.core === 'all' ? `0-${CORES - 1}` : String(opts.core);
  const [cmd, argv] = PINNED ? ['taskset', ['-c', cores, command, ...args]] : [command, args];
  const proc = spawn(cmd, argv, {
    stdio: [opts.stdinPipe === true ? 'pipe' : 'ignore', out, err],
    detached: true, // its own process group: nginx's worker dies with its master
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  closeSync(err);
  if (out !== err) closeSync(out);
  if (proc.pid === undefined) throw new Error(`bench: could not start ${name} (${command})`);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    logFile: opts.logFile,
    exited,
    async stop(signal = 'SIGTERM', ms = 5000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        killGroup(child.pid, signal);
        const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), ms);
        await exited;
        clearTimeout(timer);
      }
      // The master may be gone while a worker lingers: clear the group.
      killGroup(child.pid, 'SIGKILL');
      live.delete(child);
      return proc.exitCode;
    },
  };
  live.add(child);
  void exited.then(() => {
    if (proc.stdin !== null) proc.stdin.destroy();
  });
  return child;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop('SIGKILL', 1000)));
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Resolves once the port accepts a connection; fails with the child's last log lines if it died. */
export async function waitForPort(port: number, child: Child, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(
        `bench: ${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before listening:\n${tail(child.logFile)}`,
      );
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(
        `bench: ${child.name} did not listen on ${port} within ${ms} ms:\n${tail(child.logFile)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** VmRSS of one process, in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (m === null) throw new Error(`bench: no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

const CLK_TCK = 100;
/** CPU seconds (user + system) used so far by every process in a process group (nginx: master + worker). */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const p of cpuSnapshot().values()) if (p.pgid === pgid) ticks += p.ticks;
  return ticks / CLK_TCK;
}

/** `ulimit -n` of this process (children inherit it). */
export function openFileLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  if (m === null || m[1] === 'unlimited') return Number.POSITIVE_INFINITY;
  return Number(m[1]);
}

export type CpuSnapshot = Map<number, { pgid: number; ticks: number }>;

/** CPU ticks of every process on the machine, with its process group. */
export function cpuSnapshot(): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    snap.set(Number(entry), { pgid: Number(f[2]), ticks: Number(f[11]) + Number(f[12]) });
  }
  return snap;
}

/** The runner's own process group (npm, the runner, a wrk child): never "other". */
const OWN_PGID = (() => {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
})();

/**
 * CPU seconds used between two snapshots by processes that are not the bench's (not the runner's
 * group, not a child's group): the machine's background load, which skews the figures.
 */
export function otherCpuSeconds(before: CpuSnapshot, after: CpuSnapshot): number {
  const ours = new Set([OWN_PGID, ...[...live].map((c) => c.pid)]);
  let ticks = 0;
  for (const [pid, a] of after) {
    if (ours.has(a.pgid)) continue;
    ticks += Math.max(0, a.ticks - (before.get(pid)?.ticks ?? 0));
  }
  return ticks / CLK_TCK;
}

/** Hypervisor steal time so far, in seconds, summed over every core (from /proc/stat). */
export function stealSeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  // cpu user nice system idle iowait irq softirq steal …
  return Number(line.trim().split(/\s+/)[8] ?? 0) / CLK_TCK;
}

/**
 * Busy time of one core so far, in seconds (from /proc/stat: everything but idle and iowait). The
 * load core runs the upstream, the load generator (and Redis): near 100% busy, it is the limit.
 */
export function coreBusySeconds(core: number): number {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${core} `));
  if (line === undefined) return Number.NaN;
  // cpuN user nice system idle iowait irq softirq steal …
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / CLK_TCK;
}

/** The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp; undefined when none. */
function listeningInode(port: number): string | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex}`) === true && f[3] === '0A') return f[9];
  }
  return undefined;
}

/**
 * How many processes of a group, other than its leader, hold the socket listening on `port`: the
 * cluster workers that have called listen() (with node:cluster's SCHED_NONE each one holds the
 * shared socket). The port answers once the first worker listens; this says when all of them do.
 */
export function listeningWorkers(pgid: number, port: number): number {
  const inode = listeningInode(port);
  if (inode === undefined) return 0;
  const want = `socket:[${inode}]`;
  let n = 0;
  for (const [pid, p] of cpuSnapshot()) {
    if (p.pgid !== pgid || pid === pgid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    if (fds.some((fd) => safeReadlink(`/proc/${pid}/fd/${fd}`) === want)) n++;
  }
  return n;
}

function safeReadlink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** CPU seconds of each process of a group between two snapshots: the leader first (a cluster's primary). */
export function groupCpuSplit(pgid: number, before: CpuSnapshot, after: CpuSnapshot): number[] {
  const rows: [number, number][] = [];
  for (const [pid, a] of after) {
    if (a.pgid !== pgid) continue;
    rows.push([pid, (a.ticks - (before.get(pid)?.ticks ?? 0)) / CLK_TCK]);
  }
  rows.sort((x, y) => (x[0] === pgid ? -1 : y[0] === pgid ? 1 : x[0] - y[0]));
  return rows.map((r) => r[1]);
}
