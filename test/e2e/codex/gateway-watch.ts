/**
 * What Codex asked the gateway for, seen from the gateway's own HTTP server: each upgrade with the
 * status the gateway answered it with, and each POST. It only listens: the gateway's handlers run
 * as they would, and a scenario can tell whether Codex really used the WebSocket.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';

export interface UpgradeSeen {
  path: string;
  /** The status line the gateway wrote (101 when it accepted), if it wrote one. */
  status: number | undefined;
}

export interface GatewayTraffic {
  upgrades: UpgradeSeen[];
  /** POST paths, in arrival order. */
  posts: string[];
}

/** The status in the first bytes written to an upgraded socket (`HTTP/1.1 101 …`). */
function statusIn(chunk: unknown): number | undefined {
  const text = Buffer.isBuffer(chunk) ? chunk.subarray(0, 16).toString('latin1') : String(chunk);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m === null ? undefined : Number(m[1]);
}

export function watchGateway(server: http.Server): GatewayTraffic {
  const traffic: GatewayTraffic = { upgrades: [], posts: [] };
  // Prepended, so that these run before the gateway's own listeners.
  server.prependListener('request', (req: http.IncomingMessage) => {
    if (req.method === 'POST') traffic.posts.push(req.url ?? '');
  });
  server.prependListener('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    const seen: UpgradeSeen = { path: req.url ?? '', status: undefined };
    traffic.upgrades.push(seen);
    // The answer's status line is the first thing written, by write() or end().
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    const end = socket.end.bind(socket) as (...args: unknown[]) => Duplex;
    let looked = false;
    const note = (chunk: unknown) => {
      if (looked || chunk === undefined || typeof chunk === 'function') return;
      looked = true;
      seen.status = statusIn(chunk);
    };
    socket.write = ((...args: unknown[]) => {
      note(args[0]);
      return write(...args);
    }) as Duplex['write'];
    socket.end = ((...args: unknown[]) => {
      note(args[0]);
      return end(...args);
    }) as Duplex['end'];
  });
  return traffic;
}
