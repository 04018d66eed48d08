/**
 * A client of Responses over WebSocket, as Codex speaks it: a GET upgrade on a Responses path with
 * `OpenAI-Beta: responses_websockets=2026-02-06`, `response.create` frames, and the server's events
 * as text frames. `turn()` sends one create and collects frames up to the turn's end.
 */
import WebSocket from 'ws';
import { CLIENT_KEY } from './gateway.js';

export const WS_BETA = 'responses_websockets=2026-02-06';

export type Frame = Record<string, unknown> & { type: string };

/** A frame that ends a turn: the response's terminal event, or an error frame. */
export function endsTurn(frame: Frame): boolean {
  return (
    frame.type === 'response.completed' ||
    frame.type === 'response.failed' ||
    frame.type === 'response.incomplete' ||
    frame.type === 'error'
  );
}

export class ResponsesWsClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Every non-text frame received. */
  readonly binary: Buffer[] = [];
  /** Settles with the close code once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  private read = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.binary.push(data as Buffer);
      else this.frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame);
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.wake();
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  /** Opens a socket; rejects with the HTTP status when the upgrade is refused. */
  static connect(
    base: string,
    opts: { path?: string; key?: string | null; headers?: Record<string, string>; deflate?: boolean } = {},
  ): Promise<ResponsesWsClient> {
    const url = base.replace(/^http/, 'ws') + (opts.path ?? '/v1/responses');
    const headers: Record<string, string> = { 'openai-beta': WS_BETA, ...opts.headers };
    const key = opts.key === undefined ? CLIENT_KEY : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    const ws = new WebSocket(url, { headers, perMessageDeflate: opts.deflate ?? true });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new ResponsesWsClient(ws)));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          reject(
            Object.assign(new Error(`upgrade refused: ${res.statusCode}`), {
              status: res.statusCode,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          ),
        );
      });
      ws.once('error', reject);
    });
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** The next frame not read yet (waits for it); undefined if the socket closes first. */
  async next(): Promise<Frame | undefined> {
    while (this.read >= this.frames.length) {
      if (this.ws.readyState === WebSocket.CLOSED) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.frames[this.read++];
  }

  /** Frames up to and including the one that ends the turn (or all until the socket closed). */
  async untilTurnEnds(): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next();
      if (f === undefined) return out;
      out.push(f);
      if (endsTurn(f)) return out;
    }
  }

  /** Sends a `response.create` with `body` and collects its frames up to the turn's end. */
  turn(body: Record<string, unknown>): Promise<Frame[]> {
    this.send({ type: 'response.create', ...body });
    return this.untilTurnEnds();
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
