/**
 * A real redis-server for a test, on a free loopback port, with no persistence: a test can kill it
 * (SIGKILL, like a crash), restart it empty on the same port, and read what tapgate stored.
 * `.ci/run` installs Debian's redis-server; the README names it as the test prerequisite.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** A client for the test's own reads and writes (connected lazily, closed with the server). */
  readonly client: Redis;
  /** SIGKILL: the server is gone at once, connections reset. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: Redis stays connected but answers nothing (slower than any timeout). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/** A port free right now on 127.0.0.1 (the kernel picks it; the server binds it next). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function launch(port: number, password: string | undefined): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      ...(password === undefined ? [] : ['--requirepass', password]),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.resume();
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error('redis-server is not installed: `apt-get install redis-server` (see the README)')
          : err,
      ),
    );
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)),
    );
  });
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/**
 * `port`: a port chosen earlier (a gateway may be told about it before Redis runs). `password`:
 * Redis requires it (`requirepass`); `url` then carries it.
 */
export async function startRedis(port?: number, password?: string): Promise<TestRedis> {
  port ??= await freePort();
  let child = await launch(port, password);
  const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`;
  const url = `redis://${auth}127.0.0.1:${port}`;
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, password });
  client.on('error', () => undefined);
  return {
    port,
    url,
    client,
    kill: () => stop(child, 'SIGKILL'),
    restart: async () => {
      child.kill('SIGCONT');
      await stop(child, 'SIGKILL');
      child = await launch(port, password);
    },
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    close: async () => {
      client.disconnect();
      child.kill('SIGCONT');
      await stop(child, 'SIGKILL');
    },
  };
}
