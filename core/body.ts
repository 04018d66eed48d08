/** Reads a request body once, within the size limit, and decodes it for JSON routes. */
import type { IncomingMessage } from 'node:http';
import zlib from 'node:zlib';
import {
  BodyTooLargeError,
  ClientAbortError,
  type GatewayError,
  InvalidRequestError,
  UnsupportedMediaTypeError,
} from './errors.js';
import { truncate } from './truncate.js';

const READER = Symbol('tapgate.body-reader');
type Reading = IncomingMessage & { [READER]?: BodyReader };

/** One body being read; its listeners are shared functions that find it on the request. */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly req: Reading,
    private readonly limit: number,
    private readonly resolve: (b: Buffer) => void,
    private readonly reject: (e: GatewayError) => void,
  ) {
    req[READER] = this;
    req.on('data', BodyReader.onData);
    req.on('end', BodyReader.onEnd);
    req.on('close', BodyReader.onClose);
    req.on('error', BodyReader.onClose);
  }

  private static onData(this: Reading, chunk: Buffer): void {
    const r = this[READER]!;
    r.size += chunk.length;
    if (r.size > r.limit) {
      r.done();
      r.reject(tooLarge(r.limit));
      return;
    }
    r.chunks.push(chunk);
  }

  private static onEnd(this: Reading): void {
    const r = this[READER]!;
    r.done();
    r.resolve(r.chunks.length === 1 ? r.chunks[0]! : Buffer.concat(r.chunks, r.size));
  }

  private static onClose(this: Reading): void {
    const r = this[READER];
    if (r === undefined) return;
    r.done();
    r.reject(
      new ClientAbortError('Client closed the connection while sending the body', { phase: 'admission' }),
    );
  }

  private done(): void {
    const req = this.req;
    req[READER] = undefined;
    req.off('data', BodyReader.onData);
    req.off('end', BodyReader.onEnd);
    req.off('close', BodyReader.onClose);
    req.off('error', BodyReader.onClose);
  }
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => new BodyReader(req, limit, resolve, reject));
}

function tooLarge(limit: number): GatewayError {
  return new BodyTooLargeError(`Request body is larger than the limit of ${limit} bytes`, {
    phase: 'admission',
  });
}

/** Decoders stop at `maxOutputLength` (ERR_BUFFER_TOO_LARGE): a bomb never inflates past the limit. */
type Decoder = (b: Buffer, opts: { maxOutputLength: number }) => Buffer;
const DECODERS: Record<string, Decoder | undefined> = {
  gzip: (b, o) => zlib.gunzipSync(b, o),
  'x-gzip': (b, o) => zlib.gunzipSync(b, o),
  deflate: (b, o) => zlib.inflateSync(b, o),
  br: (b, o) => zlib.brotliDecompressSync(b, o),
  // Node ≥ 22.15 has zstd; on older Node the body is forwarded as sent, header included.
  zstd: (zlib as unknown as { zstdDecompressSync?: Decoder }).zstdDecompressSync,
  identity: (b) => b,
};

export interface DecodedBody {
  body: Buffer;
  /** The body could not be decoded here and must go upstream with its Content-Encoding. */
  opaque: boolean;
}

/** Decodes Content-Encoding where this Node can; never leaves the header on a decoded body. */
export function decodeBody(body: Buffer, encoding: string | undefined, limit: number): DecodedBody {
  if (encoding === undefined || encoding === '' || encoding === 'identity') return { body, opaque: false };
  const decoder = DECODERS[encoding.trim().toLowerCase()];
  if (decoder === undefined) {
    if (encoding.trim().toLowerCase() === 'zstd') return { body, opaque: true };
    throw new InvalidRequestError(`Unsupported Content-Encoding: ${truncate(encoding)}`, {
      param: 'content-encoding',
    });
  }
  let out: Buffer;
  try {
    out = decoder(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit);
    throw new InvalidRequestError(`Request body is not valid ${encoding}`, { param: 'content-encoding' });
  }
  return { body: out, opaque: false };
}

/** Parses a JSON object body; names the problem when it is not one. */
export function parseJsonBody(body: Buffer, contentType: string | undefined): Record<string, unknown> {
  if (contentType !== undefined && !/^application\/(.+\+)?json\b/i.test(contentType.trim())) {
    throw new UnsupportedMediaTypeError(
      `Content-Type must be application/json, got ${truncate(contentType.split(';')[0]!)}`,
    );
  }
  if (body.length === 0) throw new InvalidRequestError('Request body is empty: expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InvalidRequestError(`Request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError('Request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
