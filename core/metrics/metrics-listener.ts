/** The metrics listener (`metrics.listen`): an HTTP server of its own, for a scraper and probes only. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListenAddress } from '../config/listen-address.js';

/** Where a metrics listener binds when `metrics.listen` is not set. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464';

export class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** The address to bind, or undefined for none (`false`, `''`, or metrics off). */
export function listenAddress(listen: string | false | undefined): string | undefined {
  if (listen === false || listen === '') return undefined;
  return listen ?? DEFAULT_METRICS_LISTEN;
}

/** Binds `address` (host:port); rejects with a ListenError (EADDRINUSE…) that names the address. */
export async function startMetricsListener(
  address: string,
  handler: http.RequestListener,
): Promise<{ server: http.Server; url: string }> {
  const parsed = parseListenAddress(address);
  if (parsed === undefined) throw new ListenError(`not a host:port address: ${address}`, undefined);
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new ListenError(
          err.code === 'EADDRINUSE'
            ? `${address} is already in use (another tapgate, or another exporter on that port)`
            : `cannot listen on ${address}: ${err.message}`,
          err.code,
        ),
      ),
    );
    server.listen(parsed.port, parsed.host, () => resolve());
  });
  // Scrapers keep connections alive: a shutdown must not wait for them.
  server.on('error', () => undefined);
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { server, url: `http://${host}:${addr.port}` };
}

export function stopMetricsListener(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
