/**
 * The dashboard plugin: a live view of the gateway for operators. A page at `path` and a WebSocket
 * feed at `{path}/ws` show requests in flight and recent ones, which upstream served them, what
 * failed and why, and which upstreams are cooling and until when. Both need the admin token.
 */
import { z } from 'zod';
import {
  duration,
  FailureThrottle,
  integer,
  PoolAdmin,
  size,
  Stage,
  type PluginContext,
  type Reply,
  type TapgatePlugin,
} from '../../core/index.js';
import { AdminApi } from './admin-api.js';
import { DashboardAuth } from './auth.js';
import { Collector } from './collector.js';
import { Feed } from './feed.js';
import { DashboardRoutes } from './routes.js';
import { UsageSummary } from './usage-summary.js';

const NAME = 'dashboard';

export const TOKEN_MISSING =
  'dashboard: options.token is empty: set TAPGATE_ADMIN_TOKEN (the admin token for the page and the feed)';
/** More than a client key's 8: the token opens every request's details, and it is typed into a form. */
export const MIN_TOKEN_LENGTH = 16;
export const TOKEN_TOO_SHORT = `dashboard: the admin token needs at least ${MIN_TOKEN_LENGTH} characters, so it cannot be guessed (e.g. \`openssl rand -hex 24\`)`;

/** The gateway's own routes start with these: the dashboard must not take them over. */
const RESERVED = new Set(['v1', 'responses', 'models', 'backend-api']);

export const optionsSchema = z.strictObject({
  /** The page; the feed is `{path}/ws`, the assets `{path}/assets/…`. */
  path: z
    .string()
    .regex(
      /^(?:\/[A-Za-z0-9._~-]+)+$/,
      'expected a path such as /dashboard: segments of letters, digits, ".", "_", "~" or "-", no trailing slash',
    )
    .refine((p) => !RESERVED.has(p.split('/')[1]!), 'this path belongs to the gateway’s own routes')
    .default('/dashboard'),
  /** The admin token, for the page (`Authorization: Bearer` or the login form) and the feed. */
  token: z
    .string({ error: (issue) => (issue.input === undefined ? TOKEN_MISSING : 'expected a string') })
    .refine((t) => t.trim() !== '', TOKEN_MISSING)
    .refine((t) => t.trim() === '' || t.length >= MIN_TOKEN_LENGTH, TOKEN_TOO_SHORT),
  /** How often changes go out to viewers, batched. */
  batchMs: duration().pipe(z.number().min(10).max(10_000)).default(250),
  /** Recent requests kept (and sent in a snapshot). */
  recent: integer(1, 5000).default(200),
  /** Viewers connected at once; more are refused with 503. */
  maxViewers: integer(1, 1000).default(20),
  /** A viewer with more than this waiting in its socket is dropped. */
  maxBufferedBytes: size()
    .pipe(z.number().min(1024))
    .default(1024 * 1024),
});
export type DashboardOptions = z.output<typeof optionsSchema>;

export default class DashboardPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: optionsSchema };
  private feed: Feed | undefined;
  private throttle: FailureThrottle | undefined;
  private auth: DashboardAuth | undefined;
  private secrets: PluginContext['secrets'] | undefined;

  constructor(private options: DashboardOptions) {
    // The schema says so too; this guards a plugin constructed by hand.
    if (typeof options.token !== 'string' || options.token.trim() === '') throw new Error(TOKEN_MISSING);
    if (options.token.length < MIN_TOKEN_LENGTH) throw new Error(TOKEN_TOO_SHORT);
  }

  apply(gateway: PluginContext): void {
    const o = this.options;
    const hooks = gateway.hooks;
    const log = gateway.logger.child({ plugin: NAME });
    const secrets = gateway.secrets;
    secrets.add(o.token);
    // The client keys' limits, in an instance of its own: a wrong admin token is not a wrong client key.
    const brute = gateway.config.auth.bruteForce;
    const throttle = new FailureThrottle({ maxFailures: brute.maxFailures, windowMs: brute.window }, (s) =>
      log.warn(s, 'authentication failures'),
    );
    this.throttle = throttle;
    throttle.start();
    const auth = new DashboardAuth(o.token, o.path, throttle);
    this.auth = auth;
    this.secrets = secrets;
    // The pool is read at each call: it is built after apply(), and a reload may replace its upstreams.
    const admin = new AdminApi(new PoolAdmin(() => gateway.pool, gateway.upstreamTypes), log, secrets);
    const routes = new DashboardRoutes(o.path, auth, log, new UsageSummary(gateway.usage), admin);
    const collector = new Collector({ recent: o.recent, secrets, ignore: (p) => routes.owns(p) });
    const feed = new Feed(
      collector,
      auth,
      secrets,
      {
        batchMs: o.batchMs,
        maxViewers: o.maxViewers,
        maxBufferedBytes: o.maxBufferedBytes,
        recent: o.recent,
      },
      log,
      (type) => gateway.upstreamTypes.get(type)?.refresh !== undefined,
    );
    this.feed = feed;

    hooks.matchRoute.tap({ name: NAME, stage: Stage.DEFAULT }, (ctx) => routes.match(ctx.pathname));
    const none: Promise<undefined> = Promise.resolve(undefined);
    hooks.request.tapPromise({ name: NAME, stage: Stage.DEFAULT }, (ctx) =>
      ctx.route !== undefined && ctx.route.kind.startsWith(NAME)
        ? (routes.handle(ctx) as Promise<Reply | undefined>)
        : none,
    );
    hooks.upgrade.tap({ name: NAME, stage: Stage.DEFAULT }, (request) => {
      if (request.pathname !== routes.feedPath) return undefined;
      feed.upgrade(request);
      return true;
    });

    // Observers: O(1) per event, nothing serialised here.
    hooks.start.tap({ name: NAME, stage: Stage.LATE }, (ctx) => collector.onStart(ctx));
    hooks.upstreamAttempt.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream) =>
      collector.onAttempt(ctx, upstream),
    );
    hooks.upstreamResponse.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream, response) =>
      collector.onResponse(ctx, upstream, response),
    );
    hooks.firstByte.tap({ name: NAME, stage: Stage.LATE }, (ctx) => collector.onFirstByte(ctx));
    hooks.streamEvent.tap({ name: NAME, stage: Stage.LATE }, (ev, ctx) => {
      collector.onStreamEvent(ev, ctx);
      return ev;
    });
    hooks.attemptFailed.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream, error) =>
      collector.onAttemptError(ctx, upstream, error),
    );
    hooks.finish.tap({ name: NAME, stage: Stage.LATE }, (ctx, outcome) => collector.onFinish(ctx, outcome));
    hooks.ready.tap({ name: NAME, stage: Stage.DEFAULT }, ({ pool }) => feed.ready(pool));
    hooks.closing.tap({ name: NAME, stage: Stage.DEFAULT }, () => feed.closing());

    feed.start();
    log.info({ path: o.path, feed: routes.feedPath }, 'dashboard enabled');
  }

  /** The page's path and the kept requests are laid out at boot: they need a restart. */
  cannotReload(options: unknown): string | undefined {
    const next = options as DashboardOptions;
    const fixed = (['path', 'recent'] as const).filter((k) => next[k] !== this.options[k]);
    return fixed.length === 0 ? undefined : `cannot change ${fixed.join(' or ')} without a restart`;
  }

  /** A new token (sessions and viewers end), batch interval and viewer limits apply at once. */
  reload(options: unknown): void {
    const next = options as DashboardOptions;
    if (next.token !== this.options.token) {
      this.secrets?.add(next.token);
      this.auth?.rotate(next.token);
      this.feed?.revokeAll();
    }
    this.feed?.configure({
      batchMs: next.batchMs,
      maxViewers: next.maxViewers,
      maxBufferedBytes: next.maxBufferedBytes,
    });
    this.options = next;
  }

  close(): void {
    this.feed?.close();
    this.feed = undefined;
    this.throttle?.close();
    this.throttle = undefined;
  }
}
