/**
 * A scripted upstream: answers a test queues one by one (else a happy stream from its name, with an
 * `x-served-by` header), and streams it can hold open and finish later. pool.ts re-exports it.
 */
import type http from 'node:http';
import { deadline } from './raw.js';
import {
  happyStream,
  startUpstream,
  writeSseHead,
  type RecordedRequest,
  type TestUpstream,
  type UpstreamHandler,
} from './upstream.js';

/** The header a scripted upstream puts on every answer, so a test sees who served a request. */
export const SERVED_BY = 'x-served-by';

/** A complete, successful Responses stream from `name` (response id `resp_<name>`). */
export function okStream(name: string, headers: Record<string, string> = {}): UpstreamHandler {
  return (_req, res) => {
    writeSseHead(res, { [SERVED_BY]: name, ...headers });
    res.end(happyStream(`resp_${name}`).join(''));
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
