/**
 * `/healthz`, `/readyz` and `/metrics`, answered before the request pipeline: no client key, no
 * plugin route, no access line (a debug line instead), not counted as a proxied request. On the main
 * port `/metrics` needs `metrics.token`; on the metrics listener it needs nothing (bind it privately).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { openAIErrorBody } from '../kernel/errors.js';
import type { Logger } from '../observe/logger.js';
import type { Readiness } from './readiness.js';

export interface Exposition {
  contentType: string;
  body: string;
}

export interface OpsEndpointsOptions {
  /** `metrics.path`. */
  path: string;
  /** `metrics.token`: /metrics on the main port. */
  token: string | undefined;
  /** The exposition; undefined when metrics are off. */
  metrics: (() => Promise<Exposition>) | undefined;
  readiness(): Readiness | Promise<Readiness>;
  logger: Logger;
}

type Endpoint = 'healthz' | 'readyz' | 'metrics';

export class OpsEndpoints {
  private readonly tokenDigest: Buffer | undefined;

  constructor(private readonly opts: OpsEndpointsOptions) {
    this.tokenDigest = opts.token === undefined ? undefined : digest(opts.token);
  }

  /** On the main port: true when it answered (the pipeline then never sees the request). */
  readonly handleMain = (req: IncomingMessage, res: ServerResponse): boolean => {
    const endpoint = this.match(req.url);
    if (endpoint === undefined) return false;
    if (endpoint === 'metrics' && (this.tokenDigest === undefined || this.opts.metrics === undefined))
      return false;
    this.answer(endpoint, req, res, true);
    return true;
  };

  /** On the metrics listener: everything else is 404. */
  readonly handleListener = (req: IncomingMessage, res: ServerResponse): void => {
    const endpoint = this.match(req.url);
    if (endpoint === undefined || (endpoint === 'metrics' && this.opts.metrics === undefined))
      return json(res, 404, openAIErrorBody('Not found', 'invalid_request_error', 'not_found'));
    this.answer(endpoint, req, res, false);
  };

  /** A few string comparisons: this runs before every request on the main port. */
  private match(url: string | undefined): Endpoint | undefined {
    if (url === undefined || url.length < 7) return undefined;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path === '/healthz') return 'healthz';
    if (path === '/readyz') return 'readyz';
    if (path === this.opts.path) return 'metrics';
    return undefined;
  }

  private answer(endpoint: Endpoint, req: IncomingMessage, res: ServerResponse, mainPort: boolean): void {
    this.opts.logger.debug({ endpoint, method: req.method }, 'ops endpoint');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return json(res, 405, openAIErrorBody(`Use GET for /${endpoint}`, 'invalid_request_error', null));
    }
    if (endpoint === 'healthz') return json(res, 200, { status: 'ok' });
    if (endpoint === 'readyz') {
      void Promise.resolve()
        .then(() => this.opts.readiness())
        .then(
          (r) => json(res, r.status === 'ready' ? 200 : 503, r),
          (err: unknown) => this.failed(res, err),
        );
      return;
    }
    if (mainPort && !this.authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer');
      return json(
        res,
        401,
        openAIErrorBody(
          'Metrics need Authorization: Bearer <metrics.token>',
          'invalid_request_error',
          'invalid_api_key',
        ),
      );
    }
    this.opts.metrics!().then(
      (m) => {
        res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : m.body);
      },
      (err: unknown) => this.failed(res, err),
    );
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined || !/^bearer /i.test(header)) return false;
    return timingSafeEqual(digest(header.slice(7).trim()), this.tokenDigest!);
  }

  private failed(res: ServerResponse, err: unknown): void {
    this.opts.logger.error({ err }, 'ops endpoint failed');
    if (!res.headersSent) json(res, 500, openAIErrorBody('Internal error', 'server_error', null));
    else res.destroy();
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
