/**
 * The dashboard's HTTP routes, all under `path`: the page, the login and logout forms, a fixed
 * allow-list of assets, and the feed's URL (which answers plain GETs so a page can ask whether it is
 * still logged in). A client's path only ever selects an entry of the allow-list: it is never joined
 * onto the filesystem.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reply, RequestContext, RouteMatch } from '../../core/index.js';
import { htmlHeaders, sameOrigin, type DashboardAuth, type Denied, type Identity } from './auth.js';
import { apiError, type AdminApi } from './admin-api.js';
import type { UsageSummary } from './usage-summary.js';

const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'public');

interface Asset {
  /** Absolute path, or a module specifier resolved on first use. */
  file: string;
  module?: boolean;
  type: string;
}

/** Every file the dashboard serves, by the name in `{path}/assets/<name>`. Nothing else is served. */
const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['app.js', { file: join(PUBLIC_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' }],
  ['app.css', { file: join(PUBLIC_DIR, 'app.css'), type: 'text/css; charset=utf-8' }],
  [
    'uPlot.iife.min.js',
    { file: 'uplot/dist/uPlot.iife.min.js', module: true, type: 'text/javascript; charset=utf-8' },
  ],
  ['uPlot.min.css', { file: 'uplot/dist/uPlot.min.css', module: true, type: 'text/css; charset=utf-8' }],
]);
const PAGE_FILE = join(PUBLIC_DIR, 'index.html');
/** The path the page's own asset URLs are written for. */
const DEFAULT_PATH = '/dashboard';

/** The names of the served assets (for tests and the README). */
export const ASSET_NAMES: readonly string[] = [...ASSETS.keys()];

const route = (kind: string): RouteMatch => ({ kind, proxy: false, auth: 'none' });
/** The plugin checks the admin token itself, so the core's client auth is skipped (`auth: 'none'`). */
const PAGE = route('dashboard');
const LOGIN = route('dashboard.login');
const LOGOUT = route('dashboard.logout');
const ASSET = route('dashboard.asset');
const FEED = route('dashboard.feed');
const USAGE = route('dashboard.usage');
const ADMIN = route('dashboard.admin');
const OTHER = route('dashboard.other');
const OURS = new Set([PAGE, LOGIN, LOGOUT, ASSET, FEED, USAGE, ADMIN, OTHER]);
const ADMIN_PREFIX = 'api/upstreams';

const requireFrom = createRequire(import.meta.url);

const SECURITY_HEADERS = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' } as const;

function text(status: number, body: string, extra: Record<string, string> = {}): Exclude<Reply, symbol> {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS, ...extra },
    body,
  };
}

/** A refused request: 429 while its address is over the failure limit, else `unauthorized`; both close. */
function refuse(denied: Denied, unauthorized: Exclude<Reply, symbol>): Exclude<Reply, symbol> {
  if (denied.retryAfter > 0)
    return text(429, `Too many failed attempts from this address; retry in ${denied.retryAfter}s`, {
      'retry-after': String(denied.retryAfter),
      connection: 'close',
    });
  return { ...unauthorized, headers: { ...unauthorized.headers, connection: 'close' } };
}

export class DashboardRoutes {
  /** `{path}/ws`: the feed. */
  readonly feedPath: string;
  private readonly prefix: string;

  constructor(
    readonly path: string,
    private readonly auth: DashboardAuth,
    private readonly log: { warn(obj: object, msg: string): void },
    private readonly usage: UsageSummary,
    private readonly admin: AdminApi,
  ) {
    this.prefix = path + '/';
    this.feedPath = path + '/ws';
  }

  /** Whether a request path belongs to the dashboard (its requests are not shown on it). */
  owns(pathname: string): boolean {
    return pathname === this.path || pathname.startsWith(this.prefix);
  }

  /** The `matchRoute` tap: every path under `path` is the dashboard's, whatever the method. */
  match(pathname: string): RouteMatch | undefined {
    if (!this.owns(pathname)) return undefined;
    if (pathname === this.path || pathname === this.prefix) return PAGE;
    const rest = pathname.slice(this.prefix.length);
    if (rest === 'login') return LOGIN;
    if (rest === 'logout') return LOGOUT;
    if (rest === 'ws') return FEED;
    if (rest === 'api/usage') return USAGE;
    if (rest === ADMIN_PREFIX || rest.startsWith(ADMIN_PREFIX + '/')) return ADMIN;
    if (rest.startsWith('assets/')) return ASSET;
    return OTHER;
  }

  /** The `request` tap: answers the dashboard's routes; undefined for everyone else's. */
  async handle(ctx: RequestContext): Promise<Reply | undefined> {
    const r = ctx.route;
    if (r === undefined || !OURS.has(r)) return undefined;
    const method = ctx.method;
    const headers = ctx.req.headers;
    const read = method === 'GET' || method === 'HEAD';
    switch (r) {
      case PAGE: {
        if (!read) return text(405, 'Method not allowed', { allow: 'GET, HEAD' });
        const who = this.identify(ctx);
        if (who.kind === 'denied') return refuse(who, this.auth.form(401));
        return this.page(headers.host);
      }
      case LOGIN: {
        if (method === 'POST') {
          if (!sameOrigin(headers, true)) return text(403, 'Cross-origin form post refused');
          return this.auth.login(ctx);
        }
        if (!read) return text(405, 'Method not allowed', { allow: 'GET, HEAD, POST' });
        const who = this.identify(ctx);
        if (who.kind !== 'denied')
          return { status: 303, headers: { location: this.path, ...SECURITY_HEADERS } };
        return who.retryAfter > 0 ? refuse(who, this.auth.form(401)) : this.auth.form(200);
      }
      case LOGOUT:
        if (method !== 'POST') return text(405, 'Method not allowed', { allow: 'POST' });
        if (!sameOrigin(headers, true)) return text(403, 'Cross-origin form post refused');
        return this.auth.logout(ctx.req);
      case ASSET: {
        if (!read) return text(405, 'Method not allowed', { allow: 'GET, HEAD' });
        const asset = ASSETS.get(ctx.pathname.slice(this.prefix.length + 'assets/'.length));
        if (asset === undefined) return text(404, 'Not found');
        const who = this.identify(ctx);
        if (who.kind === 'denied') return refuse(who, text(401, 'Log in first'));
        return this.asset(asset);
      }
      case FEED: {
        // A plain GET: the page asks whether its session still holds before reconnecting.
        const who = this.identify(ctx);
        if (who.kind === 'denied') return refuse(who, text(401, 'Log in first'));
        return text(426, 'Upgrade to a WebSocket', { upgrade: 'websocket', connection: 'Upgrade' });
      }
      case USAGE: {
        if (!read) return text(405, 'Method not allowed', { allow: 'GET, HEAD' });
        const who = this.identify(ctx);
        if (who.kind === 'denied') return refuse(who, text(401, 'Log in first'));
        return this.usageSummary();
      }
      case ADMIN: {
        const who = this.identify(ctx);
        if (who.kind === 'denied') {
          // Programs read these: OpenAI-shaped, like the rest of the API.
          if (who.retryAfter > 0)
            return apiError(
              429,
              `Too many failed attempts from this address; retry in ${who.retryAfter}s`,
              'rate_limit_exceeded',
              { 'retry-after': String(who.retryAfter), connection: 'close' },
            );
          return refuse(
            who,
            apiError(401, 'The admin token is required', 'invalid_api_key', { 'www-authenticate': 'Bearer' }),
          );
        }
        return this.admin.handle(
          ctx.req,
          method,
          who,
          ctx.pathname.slice(this.prefix.length + ADMIN_PREFIX.length),
        );
      }
      default:
        return text(404, 'Not found');
    }
  }

  /** Usage per key and account, today and this month; a store that fails to answer is a 503. */
  private async usageSummary(): Promise<Reply> {
    try {
      const body = await this.usage.get();
      return { status: 200, headers: { 'content-type': 'application/json', ...SECURITY_HEADERS }, body };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dashboard: usage records unreadable');
      return text(503, 'Usage records are unreadable right now; see the gateway log');
    }
  }

  /** The request's identity; a repeated wrong token is left out of the access log (it is summarised). */
  private identify(ctx: RequestContext): Identity | Denied {
    const who = this.auth.identify(ctx.req);
    if (who.kind === 'denied' && !who.logged) ctx.skipAccessLog = true;
    return who;
  }

  private async page(host: string | undefined): Promise<Reply> {
    try {
      let body: Buffer | string = await readFile(PAGE_FILE);
      // The page names its assets under the default path; another path gets them under its own.
      if (this.path !== DEFAULT_PATH)
        body = body.toString('utf8').replaceAll(`"${DEFAULT_PATH}/assets/`, `"${this.path}/assets/`);
      return { status: 200, headers: htmlHeaders(host), body };
    } catch (err) {
      this.log.warn({ file: PAGE_FILE, code: (err as NodeJS.ErrnoException).code }, 'dashboard page missing');
      return text(500, `The dashboard page is missing (${PAGE_FILE})`);
    }
  }

  private async asset(asset: Asset): Promise<Reply> {
    try {
      const file = asset.module === true ? requireFrom.resolve(asset.file) : asset.file;
      return {
        status: 200,
        headers: {
          'content-type': asset.type,
          'x-content-type-options': 'nosniff',
          'cache-control': 'no-cache',
        },
        body: await readFile(file),
      };
    } catch (err) {
      this.log.warn(
        { asset: asset.file, code: (err as NodeJS.ErrnoException).code },
        'dashboard asset missing',
      );
      return text(404, 'Not found');
    }
  }
}
