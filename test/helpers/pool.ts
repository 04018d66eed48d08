/**
 * Helpers for the pool tests: YAML with several named upstreams (models, maxConcurrency, weight,
 * priority) and `pool.*` settings; scripted upstreams whose answers a test queues one by one, with
 * streams it can hold open and finish later; a raw client exchange it can watch byte by byte and
 * abort; and a bounded poll for state that has no event.
 */
import type net from 'node:net';
import { CLIENT_KEY, type TestGateway } from './gateway.js';
import { Harness } from './harness.js';
import { SERVED_BY, type ScriptedUpstream } from './scripted-upstream.js';
import { gatewayConfig, upstreamKey } from './proxy-config.js';
import { connectRaw, rawHttpRequest, type RawResponse } from './raw.js';
import type { UpstreamHandler } from './upstream.js';

export interface PoolUpstreamSpec {
  name: string;
  /** The upstream server's origin; `/v1` is appended. */
  url: string;
  models?: string[];
  maxConcurrency?: number;
  weight?: number;
  priority?: number;
  /** Default `upstreamKey(name)`; '' starts the upstream disabled. */
  apiKey?: string;
  timeouts?: { connect?: string; firstByte?: string; idle?: string; total?: string };
}

export interface PoolConfigOptions {
  proxy?: Record<string, unknown>;
  pool?: Record<string, unknown>;
}

/** Gateway YAML: named openai upstreams with pool keys, the default plugins, one client key. */
export function poolConfig(upstreams: PoolUpstreamSpec[], opts: PoolConfigOptions = {}): string {
  return gatewayConfig({
    proxy: opts.proxy,
    pool: opts.pool,
    upstreams: upstreams.map(({ url, ...spec }) => ({
      type: 'openai',
      baseUrl: url + '/v1',
      apiKey: upstreamKey(spec.name),
      ...spec,
    })),
  });
}

/** An HTTP error with a JSON body. */
export function jsonError(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): UpstreamHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

export {
  SERVED_BY,
  okStream,
  writeEach,
  startScripted,
  type HeldStream,
  type ScriptedUpstream,
} from './scripted-upstream.js';

/** Who served a response, from the scripted upstream's header (undefined for gateway-made answers). */
export function servedBy(r: RawResponse): string | undefined {
  const v = r.headers[SERVED_BY];
  return typeof v === 'string' ? v : undefined;
}

/** Polls `cond` until it holds; fails with `what` after `ms`. For state that has no event. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`${what}: not true after ${ms}ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One request on its own raw socket, watched byte by byte. */
export interface RawExchange {
  socket: net.Socket;
  /** Every byte received so far. */
  received(): Buffer;
  /** Resolves once the bytes received include `text`. */
  waitFor(text: string): Promise<void>;
  /** Resolves with every byte once the connection is closed. */
  ended: Promise<Buffer>;
}

/** POSTs a JSON body to /v1/responses with `connection: close`, so the gateway closes when done. */
export async function openExchange(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawExchange> {
  const socket = await connectRaw(baseUrl);
  const chunks: Buffer[] = [];
  const watchers: (() => void)[] = [];
  const received = () => Buffer.concat(chunks);
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    for (const w of [...watchers]) w();
  });
  socket.on('error', () => {});
  const ended = new Promise<Buffer>((r) => socket.once('close', () => r(received())));
  socket.write(
    rawHttpRequest(
      'POST',
      '/v1/responses',
      new URL(baseUrl).host,
      {
        authorization: `Bearer ${CLIENT_KEY}`,
        'content-type': 'application/json',
        connection: 'close',
        ...headers,
      },
      JSON.stringify(body),
    ),
  );
  return {
    socket,
    received,
    ended,
    waitFor: (text) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (received().includes(text)) {
            watchers.splice(watchers.indexOf(check), 1);
            resolve();
          }
        };
        watchers.push(check);
        socket.once('close', () => {
          if (!received().includes(text))
            reject(new Error(`connection closed before ${JSON.stringify(text)}`));
        });
        check();
      }),
  };
}

/** Per-file setup: scripted upstreams and gateways, all closed by `cleanup()` (call it in afterEach). */
export function poolHarness() {
  const h = new Harness();
  return {
    upstream: (name: string): Promise<ScriptedUpstream> => h.scripted(name),
    gateway: (upstreams: PoolUpstreamSpec[], opts: PoolConfigOptions = {}): Promise<TestGateway> =>
      h.gatewayYaml(poolConfig(upstreams, opts)),
    cleanup: () => h.cleanup(),
  };
}
