/**
 * The soak's upstream, on 127.0.0.1 port 0: it answers like the bench upstream (the 40-event SSE
 * stream, or the ~1 KB JSON body, from bench/payloads.ts), except when the request's
 * `x-soak-fault` header asks for a fault. A fault before output hits the request's first attempt
 * only (keyed by the `x-request-id` the gateway forwards), so the failover attempt is served.
 *
 * Held responses (stalls, and the ones a client hangs up on) wait for the gateway to close them;
 * one still open after HOLD_LIMIT_MS is counted in `uncancelled` and ended: a gateway that forgot
 * an upstream request shows here. A response a client hung up on must be closed within
 * CANCEL_LIMIT_MS of the hang-up (the held stream pings meanwhile, so no gateway timeout does it).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JSON_BODY, SSE_FRAMES } from '../payloads.js';
import { PRE_OUTPUT_FAULTS, type Fault } from './plan.js';
import { goneKey, outputKey, reachedKey, type Rendezvous } from './rendezvous.js';

export const FAULT_HEADER = 'x-soak-fault';
/** Not faults: what a client that hangs up needs from the upstream. */
export const HOLD_HEAD = 'hold-head';
export const HOLD_STREAM = 'hold-stream';

/** How long a held response may stay open before it counts as forgotten by the gateway. */
export const HOLD_LIMIT_MS = 10_000;
/** How soon after its client hung up an upstream request must be closed by the gateway. */
export const CANCEL_LIMIT_MS = 1000;
/** A held stream's comment line, often enough that the gateway's idle timeout never fires. */
const PING_EVERY_MS = 100;

const SSE_HEAD = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const JSON_HEAD = { 'content-type': 'application/json' };
/** created, in_progress, item added, part added and two deltas: output has started. */
const OPENING = SSE_FRAMES.slice(0, 6).join('');
/** A delta whose data is cut short: not a JSON object. */
const MALFORMED =
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":6,"delta":"tok\n\n';
const PRE_OUTPUT = new Set<string>(PRE_OUTPUT_FAULTS);

function errorBody(status: number): string {
  const type = status === 429 ? 'rate_limit_error' : 'server_error';
  const message =
    status === 429 ? 'soak: injected rate limit, try again in 1s' : 'soak: injected internal error';
  return JSON.stringify({ error: { message, type, param: null, code: type } });
}

export interface FaultUpstream {
  url: string;
  /** Faults injected, by kind (what actually happened, not what was planned). */
  readonly injected: Map<string, number>;
  /** Held responses the gateway never closed within HOLD_LIMIT_MS, or within CANCEL_LIMIT_MS of a hang-up. */
  readonly uncancelled: number;
  /** Responses open right now. */
  readonly open: number;
  /** Requests faulted before output whose failover attempt has not arrived (yet). */
  readonly awaitingRetry: number;
  /** Client connections open right now (the gateway's keep-alive sockets). */
  connections(): Promise<number>;
  close(): Promise<void>;
}

export async function startFaultUpstream(meet: Rendezvous): Promise<FaultUpstream> {
  const injected = new Map<string, number>();
  const faulted = new Set<string>();
  let open = 0;
  const state = { uncancelled: 0 };

  const count = (kind: string) => injected.set(kind, (injected.get(kind) ?? 0) + 1);

  /** Waits for the gateway to close this response; ends it if that does not happen in time. */
  const holdUntilClosed = (res: http.ServerResponse): Promise<void> =>
    new Promise((resolve) => {
      if (res.destroyed) return resolve();
      const timer = setTimeout(() => {
        state.uncancelled++;
        res.destroy();
      }, HOLD_LIMIT_MS);
      res.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });

  /**
   * A response whose client hangs up: it must be closed within CANCEL_LIMIT_MS of the hang-up.
   * The wait for the hang-up starts first, as the client may hang up before the opening is written.
   */
  const holdForHangUp = async (res: http.ServerResponse, id: string, opening?: string) => {
    const closed = new Promise<false>((r) => (res.destroyed ? r(false) : res.once('close', () => r(false))));
    const gone = meet.wait(goneKey(id), HOLD_LIMIT_MS);
    let ping: NodeJS.Timeout | undefined;
    if (opening !== undefined) {
      res.writeHead(200, SSE_HEAD);
      res.write(opening);
      ping = setInterval(() => res.write(': ping\n\n'), PING_EVERY_MS);
    } else {
      meet.fire(reachedKey(id));
    }
    const hungUp = await Promise.race([gone, closed]);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<true>((r) => (timer = setTimeout(r, hungUp ? CANCEL_LIMIT_MS : 0, true)));
    if (await Promise.race([closed, late])) {
      state.uncancelled++;
      res.destroy();
    }
    clearTimeout(timer);
    clearInterval(ping);
  };

  /** Writes and waits until the bytes are handed to the socket. */
  const write = (res: http.ServerResponse, text: string) =>
    new Promise<void>((resolve) => res.write(text, () => resolve()));

  const normal = (res: http.ServerResponse, stream: boolean) => {
    if (!stream) {
      res.writeHead(200, { ...JSON_HEAD, 'content-length': String(JSON_BODY.length) });
      res.end(JSON_BODY);
      return;
    }
    res.writeHead(200, SSE_HEAD);
    for (let i = 0; i < SSE_FRAMES.length - 1; i++) res.write(SSE_FRAMES[i]!);
    res.end(SSE_FRAMES[SSE_FRAMES.length - 1]!);
  };

  const answer = async (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    const stream = body.includes('"stream":true');
    const id = String(req.headers['x-request-id'] ?? '');
    const fault = String(req.headers[FAULT_HEADER] ?? 'none') as
      Fault | typeof HOLD_HEAD | typeof HOLD_STREAM;
    if (PRE_OUTPUT.has(fault)) {
      // The failover attempt of a faulted request is served normally.
      if (faulted.delete(id)) return normal(res, stream);
      faulted.add(id);
    }
    switch (fault) {
      case 'none':
        return normal(res, stream);
      case HOLD_HEAD:
        return holdForHangUp(res, id);
      case HOLD_STREAM:
        return holdForHangUp(res, id, OPENING);
      case 'reset-before-headers':
        count(fault);
        res.socket?.resetAndDestroy();
        return;
      case 'http-429':
        count(fault);
        res.writeHead(429, { ...JSON_HEAD, 'retry-after': '1' });
        res.end(errorBody(429));
        return;
      case 'http-500':
        count(fault);
        res.writeHead(500, JSON_HEAD);
        res.end(errorBody(500));
        return;
      case 'close-after-headers':
        count(fault);
        res.writeHead(200, stream ? SSE_HEAD : JSON_HEAD);
        res.flushHeaders();
        res.socket?.end(); // the head, then FIN: no body, no terminating chunk
        return;
      case 'stall-before-output':
        count(fault);
        res.writeHead(200, stream ? SSE_HEAD : JSON_HEAD);
        res.flushHeaders();
        return holdUntilClosed(res);
      case 'reset-mid-stream':
      case 'stall-mid-stream':
      case 'malformed-sse': {
        res.writeHead(200, SSE_HEAD);
        await write(res, OPENING);
        // Only once the client has output is the fault mid-stream.
        if (!(await meet.wait(outputKey(id), HOLD_LIMIT_MS))) {
          // The client ended without output; its own outcome tells what went wrong.
          res.destroy();
          return;
        }
        count(fault);
        if (fault === 'reset-mid-stream') {
          res.socket?.resetAndDestroy();
          return;
        }
        if (fault === 'malformed-sse') await write(res, MALFORMED);
        return holdUntilClosed(res);
      }
      default:
        res.writeHead(400, JSON_HEAD);
        res.end(
          JSON.stringify({
            error: {
              message: `soak: unknown fault ${fault}`,
              type: 'invalid_request_error',
              param: null,
              code: null,
            },
          }),
        );
    }
  };

  const server = http.createServer((req, res) => {
    open++;
    res.once('close', () => open--);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      void answer(req, res, body).catch(() => res.destroy());
    });
  });
  // The gateway keeps idle upstream sockets: never close them first.
  server.keepAliveTimeout = 10 * 60_000;
  server.headersTimeout = 10 * 60_000 + 1000;
  server.requestTimeout = 0;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    injected,
    get uncancelled() {
      return state.uncancelled;
    },
    get open() {
      return open;
    },
    get awaitingRetry() {
      return faulted.size;
    },
    connections: () =>
      new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
