/**
 * Helpers for the pool tests: YAML with several named upstreams (models, maxConcurrency, weight,
 * priority) and `pool.*` settings; scripted upstreams whose answers a test queues one by one, with
 * streams it can hold open and finish later; a raw client exchange it can watch byte by byte and
 * abort; and a bounded poll for state that has no event.
 */
import type http from 'node:http';
import type net from 'node:net';
import { CLIENT_KEY, startGateway, type TestGateway } from './gateway.js';
import { Harness } from './harness.js';
import { gatewayConfig, upstreamKey } from './proxy-config.js';
import { connectRaw, deadline, rawHttpRequest, type RawResponse } from './raw.js';
import {
  happyStream,
  startUpstream,
  writeSseHead,
  type RecordedRequest,
  type TestUpstream,
  type UpstreamHandler,
} from './upstream.js';

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

/** The header a scripted upstream puts on every answer, so a test sees who served a request. */
export const SERVED_BY = 'x-served-by';

/** A complete, successful Responses stream from `name` (response id `resp_<name>`). */
export function okStream(name: string, headers: Record<string, string> = {}): UpstreamHandler {
  return (_req, res) => {
    writeSseHead(res, { [SERVED_BY]: name, ...headers });
    res.end(happyStream(`resp_${name}`).join(''));
  };
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

/** Writes each piece as its own chunk, waiting until each is flushed to the socket. */
export async function writeEach(res: http.ServerResponse, pieces: string[]): Promise<void> {
  for (const p of pieces) await new Promise<void>((r) => res.write(p, () => r()));
}

/** A stream an upstream keeps open until the test finishes it. */
export interface HeldStream {
  recorded: RecordedRequest;
  res: http.ServerResponse;
  /** Resolves (with performance.now()) when the upstream side of the exchange closes, for any reason. */
  closed: Promise<number>;
  /** Writes the rest of the happy stream and ends it. */
  finish(): void;
}

export interface ScriptedUpstream extends TestUpstream {
  name: string;
  /** Answers every request that has no queued answer (default: `okStream(name)`). */
  fallback: UpstreamHandler;
  /** Queues one-shot answers, used in order before `fallback`. */
  answer(...handlers: UpstreamHandler[]): void;
  /**
   * Queues an answer that sends the first `prefix` frames of the happy stream (0: not even the
   * head) and then holds the stream open; resolves once they are flushed. `headers` go on its head.
   */
  holdNext(prefix?: number, headers?: Record<string, string>): Promise<HeldStream>;
}

export async function startScripted(name: string): Promise<ScriptedUpstream> {
  const queue: UpstreamHandler[] = [];
  const scripted = {} as ScriptedUpstream;
  const up = await startUpstream((req, res, recorded) =>
    (queue.shift() ?? scripted.fallback)(req, res, recorded),
  );
  const frames = happyStream(`resp_${name}`);
  return Object.assign(scripted, up, {
    name,
    fallback: okStream(name),
    answer: (...handlers: UpstreamHandler[]) => queue.push(...handlers),
    holdNext: (prefix = 5, headers: Record<string, string> = {}) =>
      deadline(
        new Promise<HeldStream>((resolve) => {
          queue.push(async (_req, res, recorded) => {
            const closed = new Promise<number>((r) => res.once('close', () => r(performance.now())));
            const head = () => writeSseHead(res, { [SERVED_BY]: name, ...headers });
            if (prefix > 0) {
              head();
              await writeEach(res, frames.slice(0, prefix));
            }
            resolve({
              recorded,
              res,
              closed,
              finish: () => {
                if (prefix === 0) head();
                res.end(frames.slice(prefix).join(''));
              },
            });
          });
        }),
        5000,
        `no request reached ${name} to hold`,
      ),
  });
}

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
    upstream: async (name: string): Promise<ScriptedUpstream> => h.track(await startScripted(name)),
    gateway: async (upstreams: PoolUpstreamSpec[], opts: PoolConfigOptions = {}): Promise<TestGateway> =>
      h.track(await startGateway(poolConfig(upstreams, opts))),
    cleanup: () => h.cleanup(),
  };
}
