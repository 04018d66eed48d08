/**
 * Upstreams that never answer at the TCP level. `startBlackhole` runs a python3 listener with a
 * backlog of 0 that never calls accept(); one filler connection fills its accept queue, after which
 * the kernel drops every further SYN, so a connect to it hangs (until the client gives up).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface Blackhole {
  url: string;
  port: number;
  close(): Promise<void>;
}

const SCRIPT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

export async function startBlackhole(): Promise<Blackhole> {
  const py: ChildProcess = spawn('python3', ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => py.once('exit', () => r()));
  const fillers: net.Socket[] = [];
  const close = async () => {
    for (const f of fillers) f.destroy();
    py.stdin!.end();
    await exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      py.once('error', reject);
      py.once('exit', (code) => reject(new Error(`python3 exited (${code}) before listening`)));
      py.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    });
    // The first connection completes its handshake and sits in the accept queue, which is now full.
    const first = net.connect(port, '127.0.0.1');
    fillers.push(first);
    await new Promise<void>((resolve, reject) => {
      first.once('connect', resolve);
      first.once('error', reject);
    });
    // A second one only stays in SYN-SENT, as the gateway's will; it keeps the queue under pressure.
    const second = net.connect(port, '127.0.0.1');
    second.on('error', () => {});
    fillers.push(second);
    return { url: `http://127.0.0.1:${port}`, port, close };
  } catch (err) {
    await close();
    throw err;
  }
}
