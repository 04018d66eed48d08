/**
 * Network isolation for the Codex e2e (README.md beside this file): a private network namespace
 * (layer 3), a loopback trap as proxy and as the ChatGPT/OpenAI base URLs (layer 2) and the strace
 * audit (layer 4). Layer 1, Codex's own config, is in codex-config.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { log } from './common.js';

const IN_NETNS_ENV = 'TAPGATE_CODEX_IN_NETNS';

/** True in the copy of the script that runs inside the namespace. */
export const inNetns = (): boolean => process.env[IN_NETNS_ENV] === '1';

/**
 * Layer 3: re-runs `script` in a new network namespace holding only loopback, so even a Codex that
 * ignored its config could not reach past 127.0.0.1. Returns when this process should run the
 * scenarios; otherwise runs them in a child and exits with its status.
 */
export function isolateNetwork(script: string): void {
  const mode = process.env.TAPGATE_CODEX_NETNS || 'on';
  if (inNetns()) {
    const external = Object.entries(os.networkInterfaces()).filter(([, addrs]) =>
      addrs?.some((a) => !a.internal),
    );
    if (external.length > 0) {
      throw new Error(
        `expected only loopback in the network namespace, found ${external.map(([n]) => n).join(', ')}`,
      );
    }
    log('network: inside a private network namespace (loopback only)');
    return;
  }
  if (mode === 'off') {
    log(
      'network: TAPGATE_CODEX_NETNS=off: no network namespace; the Codex config and the proxy trap are the guards',
    );
    return;
  }
  const unshareArgs = process.getuid?.() === 0 ? ['--net'] : ['--net', '--map-root-user'];
  const probe = spawnSync('unshare', [...unshareArgs, '--', 'ip', 'link', 'set', 'lo', 'up'], {
    encoding: 'utf8',
  });
  if (probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status}`);
    throw new Error(
      `cannot make a network namespace with \`unshare ${unshareArgs.join(' ')}\` and \`ip\` (${why}). ` +
        'Set TAPGATE_CODEX_NETNS=off to rely on the Codex config alone (see test/e2e/codex/README.md).',
    );
  }
  log(`network: re-running in a new network namespace: unshare ${unshareArgs.join(' ')}, ip link set lo up`);
  const inner = [process.execPath, ...process.execArgv, script, ...process.argv.slice(2)];
  const r = spawnSync(
    'unshare',
    [...unshareArgs, '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...inner],
    {
      stdio: 'inherit',
      env: { ...process.env, [IN_NETNS_ENV]: '1' },
    },
  );
  process.exit(r.status ?? 1);
}

export interface Trap {
  url: string;
  hits: string[];
  close(): Promise<void>;
}

/**
 * Layer 2: Codex honours the proxy variables (NO_PROXY exempts loopback), so any request meant for
 * the internet lands here, is refused and is counted as a failure.
 */
export async function startTrap(): Promise<Trap> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.headers.host ?? ''}${req.url}`);
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('tapgate e2e: traffic off loopback is not allowed\n');
  });
  server.on('connect', (req, socket) => {
    hits.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  // A WebSocket meant for the internet would come as an upgrade to a base URL pointing here.
  server.on('upgrade', (req, socket) => {
    hits.push(`UPGRADE ${req.headers.host ?? ''}${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Layer 4, when strace works here: every connect/sendto/sendmsg of Codex and its children is checked. */
export function straceAvailable(): boolean {
  if (process.env.TAPGATE_CODEX_STRACE === '0') return false;
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=connect', '-o', '/dev/null', 'true'], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

export const STRACE_ARGS = ['strace', '-f', '-qq', '-e', 'trace=connect,sendto,sendmsg', '-o'];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** Non-loopback IPv4/IPv6 destinations in an strace log. */
export function escapesIn(traceFile: string): string[] {
  if (!existsSync(traceFile)) return ['(no strace output)'];
  const out = new Set<string>();
  for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
    if (!/\b(connect|sendto|sendmsg)\(/.test(line)) continue;
    const v4 = /sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(line);
    const v6 = /sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"/.exec(line);
    const m = v4 ?? v6;
    if (m !== null && !LOOPBACK.test(m[2]!)) out.add(`${m[2]}:${m[1]}`);
  }
  return [...out];
}
