/**
 * A loopback upstream whose next answer is a fault the test picks: a reset, a stall, malformed SSE,
 * an oversized frame, a bad content-encoding, HTML, a close right after the headers. It is the
 * scripted upstream (faults are queued one-shot answers; a healthy stream answers everything else),
 * and it also tracks each exchange and each socket, so a test can see the gateway drop its side.
 * A refused connection needs no server: point the gateway at `closedPort()` (raw.ts).
 */
import type http from 'node:http';
import type net from 'node:net';
import zlib from 'node:zlib';
import { startScripted, writeEach, type ScriptedUpstream } from './scripted-upstream.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
  type UpstreamHandler,
} from './upstream.js';

/** One request as the upstream saw it. */
export interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** Resolves when the upstream side of the exchange is closed, for any reason. */
  closed: Promise<void>;
}

export interface FaultUpstream extends ScriptedUpstream {
  /** Every exchange so far, in arrival order (at the request's head, before its body). */
  readonly exchanges: Exchange[];
  /** Sockets open on the upstream side right now. */
  openSockets(): number;
  /** Closes idle keep-alive sockets, so the gateway's agent drops its pooled one. */
  closeIdle(): void;
}

export async function startFaultUpstream(name = 'fault'): Promise<FaultUpstream> {
  const up = await startScripted(name);
  const exchanges: Exchange[] = [];
  const sockets = new Set<net.Socket>();
  up.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  up.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    // A fault may write into a socket the gateway already dropped: that is the point, not a failure.
    res.on('error', () => {});
    exchanges.push({ req, res, closed: new Promise((r) => res.once('close', () => r())) });
  });
  return Object.assign(up, {
    exchanges,
    openSockets: () => sockets.size,
    closeIdle: () => up.server.closeIdleConnections(),
  });
}

/** The happy stream every fault borrows its valid events from. */
export const FRAMES = happyStream('resp_fault');
/**
 * Frames sent before a mid-stream fault: response.created and in_progress (held by the gateway),
 * then output_item.added, content_part.added and one delta, which reach the client.
 */
export const PREFIX = 5;

/** The Response object a `stream: false` request gets. */
export const JSON_BODY = JSON.stringify(
  responseObject('resp_fault', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
);

function jsonHead(res: http.ServerResponse, extra: Record<string, string> = {}): void {
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(JSON_BODY)),
    ...extra,
  });
}

/** The whole JSON answer, healthy: what a non-streaming upstream sends. */
export const jsonOk: UpstreamHandler = (_req, res) => {
  jsonHead(res);
  res.end(JSON_BODY);
};

/** An RST instead of any response. */
export const resetBeforeHeaders: UpstreamHandler = (req) => {
  req.socket.resetAndDestroy();
};

/** A valid stream start, then an RST. */
export function resetMidStream(prefix = PREFIX): UpstreamHandler {
  return async (req, res) => {
    writeSseHead(res);
    await writeEach(res, FRAMES.slice(0, prefix));
    req.socket.resetAndDestroy();
  };
}

/** Half of a JSON body (with the full content-length), then an RST. */
export const resetMidJson: UpstreamHandler = async (req, res) => {
  jsonHead(res);
  await writeEach(res, [JSON_BODY.slice(0, JSON_BODY.length >> 1)]);
  req.socket.resetAndDestroy();
};

/** Reads the request and never answers. */
export const stallBeforeHeaders: UpstreamHandler = () => {};

/** A valid stream start, then silence with the connection open. */
export function stallMidStream(prefix = PREFIX): UpstreamHandler {
  return async (_req, res) => {
    writeSseHead(res);
    await writeEach(res, FRAMES.slice(0, prefix));
  };
}

/** Half of a JSON body, then silence. */
export const stallMidJson: UpstreamHandler = async (_req, res) => {
  jsonHead(res);
  await writeEach(res, [JSON_BODY.slice(0, JSON_BODY.length >> 1)]);
};

/** An SSE head, then `pieces` (each its own write), then the end of the body unless `end` is false. */
export function sse(pieces: string[], end = true): UpstreamHandler {
  return async (_req, res) => {
    writeSseHead(res);
    await writeEach(res, pieces);
    if (end) res.end();
  };
}

/** Malformed frames, each to be put between valid events. */
export const MALFORMED = {
  /** A data line that is cut JSON. */
  brokenJson:
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":5,"delta":"x"\n\n',
  /** Binary garbage and NULs in the data line. */
  garbageData: 'event: response.output_text.delta\ndata: \u0000\u0001\u00ff\u0000garbage\n\n',
  /** A frame with an event name and no data. */
  noData: 'event: response.output_text.delta\n\n',
  /** `event: error` with nothing else: the upstream says it failed and gives no reason. */
  bareError: 'event: error\n\n',
};

/** A 200 whose `content-type` (or body) is HTML, not what a Responses client can read. */
export function html(status: number): UpstreamHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!DOCTYPE html><html><body><h1>${status} Bad Gateway</h1><p>nginx</p></body></html>`);
  };
}

/** A healthy answer declared in a content-coding no client knows. */
export function badEncoding(kind: 'json' | 'sse', encoding = 'bogus'): UpstreamHandler {
  return (_req, res) => {
    if (kind === 'json') {
      jsonHead(res, { 'content-encoding': encoding });
      res.end(JSON_BODY);
    } else {
      writeSseHead(res, { 'content-encoding': encoding });
      res.end(FRAMES.join(''));
    }
  };
}

/** The healthy stream, gzip-compressed when the request's accept-encoding allows gzip (as CDNs do). */
export const gzipIfAsked: UpstreamHandler = (req, res) => {
  const body = FRAMES.join('');
  if (!/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    writeSseHead(res);
    res.end(body);
    return;
  }
  writeSseHead(res, { 'content-encoding': 'gzip' });
  res.end(zlib.gzipSync(body));
};

/** The response head is flushed, then the socket ends: no body, no terminating chunk. */
export function closeAfterHeaders(kind: 'json' | 'sse'): UpstreamHandler {
  return (req, res) => {
    if (kind === 'json') res.writeHead(200, { 'content-type': 'application/json' });
    else writeSseHead(res);
    res.flushHeaders();
    req.socket.end();
  };
}

/** One event whose JSON data is about `bytes` long: a delta of that much text. */
export function bigDelta(bytes: number, seq: number): string {
  return frame('response.output_text.delta', seq, {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    delta: 'x'.repeat(bytes),
  });
}

/**
 * The happy stream with one `bytes`-long delta after the first `prefix` frames (numbered after
 * them), sent in one write and left to the kernel to chunk.
 */
export function bigFrame(bytes: number, prefix = 4): UpstreamHandler {
  return async (_req, res) => {
    writeSseHead(res);
    await writeEach(res, FRAMES.slice(0, prefix));
    res.end(bigDelta(bytes, prefix) + renumber(FRAMES.slice(prefix), prefix + 1).join(''));
  };
}

/** The same frames with sequence numbers from `from` on. */
export function renumber(frames: string[], from: number): string[] {
  return frames.map((f, i) => f.replace(/"sequence_number":\d+/, `"sequence_number":${from + i}`));
}
