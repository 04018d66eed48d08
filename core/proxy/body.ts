/** Reads a request body once, within the size limit, and decodes it for JSON routes. */
import type { IncomingMessage } from 'node:http';
import zlib from 'node:zlib';
import {
  BodyTooLargeError,
  ClientAbortError,
  type GatewayError,
  InvalidRequestError,
  UnsupportedMediaTypeError,
} from '../kernel/errors.js';
import { scanJson } from './json-bounds.js';
import { truncate } from '../observe/truncate.js';

const READER = Symbol('tapgate.body-reader');
type Reading = IncomingMessage & { [READER]?: BodyReader };

/** A body of unknown length starts in a buffer of this size; it doubles as it grows. */
const FIRST_BUFFER = 16 * 1024;
/**
 * Past this many chunks, they must average MIN_CHUNK_AVERAGE bytes. Each chunk costs Node's HTTP
 * parser ~1.5 µs whatever its size: 16 MB in one-byte chunks would take ~25 s of CPU.
 */
const MANY_CHUNKS = 16 * 1024;
const MIN_CHUNK_AVERAGE = 16;

/**
 * One body being read; its listeners are shared functions that find it on the request. A body that
 * arrives in one chunk is used as it is; more chunks are copied into one buffer as they come (sized
 * from content-length when it is given), so memory follows the bytes, not the number of chunks: a
 * chunk array of a million one-byte Buffers holds ~400 bytes each, and pins every socket read.
 */
class BodyReader {
  /** The first chunk, while it is the only one. */
  private first: Buffer | undefined = undefined;
  /** Every chunk so far, copied; `size` bytes of it are the body. */
  private buffer: Buffer | undefined = undefined;
  private size = 0;
  private chunks = 0;

  constructor(
    private readonly req: Reading,
    private readonly limit: number,
    /** Content-length, when the request declared one (within the limit); else -1. */
    private readonly declared: number,
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
    const at = r.size;
    const size = (r.size = at + chunk.length);
    if (size > r.limit) {
      r.done();
      r.reject(tooLarge(r.limit));
      return;
    }
    if (++r.chunks > MANY_CHUNKS && size < r.chunks * MIN_CHUNK_AVERAGE) {
      r.done();
      r.reject(tooManyChunks(r.chunks, size));
      return;
    }
    if (at === 0) {
      r.first = chunk;
      return;
    }
    let buffer = r.buffer;
    if (buffer === undefined || size > buffer.length) buffer = r.grow(at, size);
    if (chunk.length === 1) buffer[at] = chunk[0]!;
    else buffer.set(chunk, at);
  }

  /** A buffer with room for `size` bytes that holds the `at` bytes read so far. */
  private grow(at: number, size: number): Buffer {
    const want = this.declared >= size ? this.declared : Math.max(FIRST_BUFFER, size, at * 2);
    const next = Buffer.allocUnsafe(Math.min(want, this.limit));
    if (this.buffer !== undefined) this.buffer.copy(next, 0, 0, at);
    else next.set(this.first!, 0);
    this.first = undefined;
    return (this.buffer = next);
  }

  private static onEnd(this: Reading): void {
    const r = this[READER]!;
    r.done();
    const buffer = r.buffer;
    if (buffer === undefined) r.resolve(r.first ?? EMPTY);
    // A body of unknown length may have left up to half its buffer unused; it is held as long as
    // the request (retries), so more than a quarter to spare is given back with one copy.
    else if (buffer.length - r.size > r.size / 4) r.resolve(Buffer.from(buffer.subarray(0, r.size)));
    else r.resolve(buffer.subarray(0, r.size));
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

const EMPTY = Buffer.alloc(0);

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const header = req.headers['content-length'];
  const declared = header === undefined ? -1 : Number(header);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => new BodyReader(req, limit, declared, resolve, reject));
}

function tooManyChunks(chunks: number, size: number): GatewayError {
  return new InvalidRequestError(
    `Request body arrives in too many small chunks (${chunks} chunks for ${size} bytes; at most one ` +
      `per ${MIN_CHUNK_AVERAGE} bytes past ${MANY_CHUNKS}): send it in larger writes`,
    { phase: 'admission' },
  );
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

/**
 * Parses a JSON object body; names the problem when it is not one. A body nested deeper than
 * `maxDepth` or holding more than `maxValues` values is refused before JSON.parse (see json-bounds.ts).
 */
export function parseJsonBody(
  body: Buffer,
  contentType: string | undefined,
  maxDepth: number,
  maxValues: number,
): Record<string, unknown> {
  if (contentType !== undefined && !/^application\/(.+\+)?json\b/i.test(contentType.trim())) {
    throw new UnsupportedMediaTypeError(
      `Content-Type must be application/json, got ${truncate(contentType.split(';')[0]!)}`,
    );
  }
  if (body.length === 0) throw new InvalidRequestError('Request body is empty: expected a JSON object');
  const shape = scanJson(body, maxDepth, maxValues);
  if (shape === 'too-deep')
    throw new InvalidRequestError(
      `Request body nests JSON deeper than ${maxDepth} levels (server.maxJsonDepth)`,
    );
  if (shape === 'too-many-values')
    throw new InvalidRequestError(
      `Request body has more than ${maxValues} JSON values (server.maxJsonValues)`,
    );
  if (shape === 'not-object') throw notObject();
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InvalidRequestError(`Request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw notObject();
  return value as Record<string, unknown>;
}

function notObject(): GatewayError {
  return new InvalidRequestError('Request body must be a JSON object');
}
