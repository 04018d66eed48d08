/**
 * Helpers for the dashboard tests: gateway YAML with the dashboard enabled, a feed client that keeps
 * every message and the state they add up to (requests merged by id, as a page would), waits bounded
 * by a deadline for the first message or state matching a predicate, and a probe that tells how an
 * upgrade was refused.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type net from 'node:net';
import WebSocket from 'ws';
import {
  connectRaw,
  parseHttpResponse,
  rawHttpRequest,
  rawRequest,
  readToEnd,
  type ParsedHttpResponse,
} from './raw.js';
import type { WireEvent, WirePoint, WireRequest, WireTotals } from '../../plugins/dashboard/collector.js';
import type { WireUpstream } from '../../plugins/dashboard/feed.js';
import { DEFAULT_PLUGINS, gatewayConfig } from './proxy-config.js';
import { recordOutput, registerSecret } from './secret-scan.js';

export const ADMIN_TOKEN = 'admin-token-test-0123456789abcdef';
registerSecret(ADMIN_TOKEN);

export interface DashboardConfigOptions {
  /** Upstreams as in config.yaml (type openai unless given). */
  upstreams: Record<string, unknown>[];
  /** The dashboard's options (token defaults to ADMIN_TOKEN). */
  dashboard?: Record<string, unknown>;
  proxy?: Record<string, unknown>;
  pool?: Record<string, unknown>;
  /** Client keys (default: `tester` with ${TAPGATE_TEST_KEY}). */
  keys?: { name: string; key: string }[];
  /** Other `auth` keys, e.g. `bruteForce`. */
  auth?: Record<string, unknown>;
  /** The `usage` section (default: off). */
  usage?: Record<string, unknown>;
}

export function dashboardConfig(opts: DashboardConfigOptions): string {
  return gatewayConfig({
    keys: opts.keys,
    auth: opts.auth,
    proxy: opts.proxy,
    pool: opts.pool,
    usage: opts.usage,
    upstreams: opts.upstreams.map((u) => ({ type: 'openai', ...u })),
    plugins: [...DEFAULT_PLUGINS, { name: 'dashboard', options: { token: ADMIN_TOKEN, ...opts.dashboard } }],
  });
}

/** What the feed's messages add up to. */
export interface FeedState {
  requests: Map<string, FeedRequest>;
  upstreams: FeedUpstream[];
  points: FeedPoint[];
  totals: FeedTotals | undefined;
}

/** The feed's wire shapes, as the plugin declares them. */
export type FeedEvent = WireEvent;
export type FeedRequest = WireRequest;
export type FeedUpstream = WireUpstream;
export type FeedPoint = WirePoint;
export type FeedTotals = WireTotals;

export type FeedMessage = Record<string, unknown> & { type: string };

export interface FeedClient {
  ws: WebSocket;
  /** Every message, parsed, in order. */
  messages: FeedMessage[];
  /** Every message as received (for secret scans). */
  raw: string[];
  /** Binary frames received (the feed sends text only). */
  binaryFrames: number;
  state: FeedState;
  /** The first message (from index `from`) matching `pred`; fails after `ms`. */
  message(pred: (m: FeedMessage) => boolean, ms?: number, from?: number): Promise<FeedMessage>;
  /** Resolves once the merged state matches `pred` (checked after each message); fails after `ms`. */
  until(pred: (s: FeedState) => boolean, what: string, ms?: number): Promise<FeedState>;
  /** Resolves with the close code once the socket is closed. */
  closed: Promise<number>;
  close(): Promise<void>;
}

export function wsUrl(baseUrl: string, path = '/dashboard/ws'): string {
  return baseUrl.replace(/^http/, 'ws') + path;
}

/** Opens the feed with these headers; resolves once it is open, rejects if the upgrade is refused. */
export function openFeed(
  baseUrl: string,
  headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` },
  path?: string,
): Promise<FeedClient> {
  const ws = new WebSocket(wsUrl(baseUrl, path), { headers });
  const messages: FeedMessage[] = [];
  const raw: string[] = [];
  recordOutput('dashboard', () => raw.join('\n'));
  const state: FeedState = { requests: new Map(), upstreams: [], points: [], totals: undefined };
  const listeners = new Set<() => void>();
  let closeCode: number | undefined;
  const closed = new Promise<number>((resolve) =>
    ws.once('close', (code) => {
      closeCode = code;
      resolve(code);
      for (const l of listeners) l();
    }),
  );
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    const text = String(data);
    raw.push(text);
    if (isBinary) client.binaryFrames++;
    const m = JSON.parse(text) as FeedMessage;
    messages.push(m);
    merge(state, m);
    for (const l of [...listeners]) l();
  });

  const wait = <T>(check: () => T | undefined, ms: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const first = check();
      if (first !== undefined) return resolve(first);
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(new Error(`${what}: not seen within ${ms}ms (${messages.length} messages)`));
      }, ms);
      const listener = () => {
        const v = check();
        if (v !== undefined) {
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(v);
        } else if (closeCode !== undefined) {
          clearTimeout(timer);
          listeners.delete(listener);
          reject(new Error(`${what}: the feed closed (code ${closeCode}) first`));
        }
      };
      listeners.add(listener);
    });

  const client: FeedClient = {
    ws,
    messages,
    raw,
    binaryFrames: 0,
    state,
    closed,
    message: (pred, ms = 5000, from = 0) =>
      wait(
        () => {
          for (let i = from; i < messages.length; i++) if (pred(messages[i]!)) return messages[i]!;
          return undefined;
        },
        ms,
        'a matching feed message',
      ),
    until: (pred, what, ms = 5000) => wait(() => (pred(state) ? state : undefined), ms, what),
    close: async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.terminate();
      await closed;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new UpgradeRefused(res.statusCode ?? 0));
    });
    ws.once('error', (err) => reject(err));
  });
}

export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with ${status}`);
  }
}

/** The status an upgrade to the feed is refused with (fails if the upgrade succeeds). */
export async function refusal(baseUrl: string, headers: Record<string, string>): Promise<number> {
  try {
    const feed = await openFeed(baseUrl, headers);
    await feed.close();
  } catch (err) {
    if (err instanceof UpgradeRefused) return err.status;
    throw err;
  }
  throw new Error('the upgrade was accepted');
}

function merge(state: FeedState, m: FeedMessage): void {
  if (m.type === 'snapshot') {
    state.requests.clear();
    state.points = [];
    const series = m.series as { points: FeedPoint[] };
    state.points.push(...series.points);
  } else {
    state.points.push(...(m.points as FeedPoint[]));
  }
  for (const r of m.requests as FeedRequest[]) state.requests.set(r.id, r);
  state.upstreams = m.upstreams as FeedUpstream[];
  state.totals = m.totals as FeedTotals;
}

/** Logs in through the form; resolves with the `Set-Cookie` value and the response. */
export async function login(
  baseUrl: string,
  token: string,
  path = '/dashboard',
): Promise<{ status: number; setCookie: string | undefined; location: string | undefined; body: string }> {
  const res = await rawRequest(baseUrl, {
    method: 'POST',
    path: `${path}/login`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  const setCookie = res.headers['set-cookie']?.[0];
  return {
    status: res.status,
    setCookie,
    location: typeof res.headers.location === 'string' ? res.headers.location : undefined,
    body: res.text(),
  };
}

/** `name=value` of a Set-Cookie header, for a Cookie header. */
export function cookiePair(setCookie: string): string {
  return setCookie.split(';')[0]!;
}

/** GET with headers; the usual raw response. */
export function get(baseUrl: string, path: string, headers: http.OutgoingHttpHeaders = {}) {
  return rawRequest(baseUrl, { method: 'GET', path, headers });
}

/**
 * A request whose path goes out byte for byte (no URL normalisation: `..` and `%2e` stay as they
 * are), on its own connection.
 */
export async function rawPathGet(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<ParsedHttpResponse> {
  const socket = await connectRaw(baseUrl);
  socket.write(rawHttpRequest('GET', path, new URL(baseUrl).host, { connection: 'close', ...headers }));
  return parseHttpResponse(await readToEnd(socket));
}

/**
 * A viewer that completes the WebSocket handshake and then never reads again: its socket is paused
 * as soon as the 101 head has arrived. `marker` goes out as an `x-test-viewer` header, so a test can
 * find the gateway's end of the connection.
 */
export async function openStalledViewer(
  baseUrl: string,
  marker: string,
  headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` },
): Promise<net.Socket> {
  const socket = await connectRaw(baseUrl);
  socket.on('error', () => {});
  socket.write(
    rawHttpRequest('GET', '/dashboard/ws', new URL(baseUrl).host, {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
      'x-test-viewer': marker,
      ...headers,
    }),
  );
  await new Promise<void>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      head = Buffer.concat([head, c]);
      if (head.indexOf('\r\n\r\n') < 0) return;
      socket.off('data', onData);
      socket.pause();
      if (!head.toString('latin1').startsWith('HTTP/1.1 101'))
        reject(new Error(`handshake refused: ${head}`));
      else resolve();
    };
    socket.on('data', onData);
  });
  return socket;
}
