/** The schema of config.yaml. Every object is strict: an unknown key fails at boot. */
import { z } from 'zod';
import { duration, headerToken, integer, size } from './units.js';

export const pluginEntrySchema = z.union([
  z.string().min(1),
  z.strictObject({
    name: z.string().min(1),
    options: z.record(z.string(), z.unknown()).optional(),
  }),
]);

export const timeoutsSchema = z.strictObject({
  /** TCP (and TLS) connect. */
  connect: duration().default(10_000),
  /** From request sent until the response headers arrive. */
  firstByte: duration().default(300_000),
  /** Between two body chunks of a response. */
  idle: duration().default(300_000),
  /**
   * The whole request, from arrival (queue wait, every attempt and the stream included): comment
   * pings keep `idle` from firing, this does not. 0 turns it off.
   */
  total: duration().default(3_600_000),
});

/** Keys every upstream has; each type adds its own (see the type's plugin). */
export const upstreamBaseSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, dot, dash and underscore'),
  type: z.string().min(1),
  /** Models this upstream serves; empty means any. */
  models: z.array(z.string()).default([]),
  /** Requests in flight at once; 0 means unlimited. */
  maxConcurrency: integer(0, 100_000).default(0),
  weight: integer(1, 1000).default(1),
  priority: integer(0, 1000).default(0),
  timeouts: timeoutsSchema.partial().optional(),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: integer(0, 65535).default(8787),
      /** Largest request body accepted (413 beyond). */
      bodyLimit: size().default(16 * 1024 * 1024),
      /** Deepest nesting of a JSON body (the top-level object is level 1); 400 beyond, before parsing. */
      maxJsonDepth: integer(1, 10_000).default(128),
      /** Most values (array elements, object members) in a JSON body; 400 beyond, before parsing. */
      maxJsonValues: integer(1, 100_000_000).default(1_000_000),
      /** On SIGTERM, how long in-flight requests may take to finish. */
      drainTimeout: duration().default(30_000),
      /** Slow-client guard: time allowed to send the request headers. */
      headersTimeout: duration().default(30_000),
      /** Time allowed to send the whole request. */
      requestTimeout: duration().default(120_000),
      keepAliveTimeout: duration().default(65_000),
      /**
       * Client connections held at once; more are closed as they arrive. Omitted: derived from the
       * process's file-descriptor limit (see core/connection-limit.ts).
       */
      maxConnections: integer(1, 10_000_000).optional(),
      /**
       * A client that does not read: how long the response may wait for the client to drain what
       * was written before the connection is dropped (and its upstream slot freed). 0 turns it off.
       */
      sendTimeout: duration().default(60_000),
      /** Processes serving the port (node:cluster): a number, or `auto` for one per core. */
      workers: z.union([z.literal('auto'), integer(1, 256)]).default(1),
    })
    .superRefine((s, ctx) => {
      // Node refuses to create the server otherwise; say so with both keys instead of a stack trace.
      if (s.requestTimeout > 0 && s.headersTimeout > s.requestTimeout)
        ctx.addIssue({
          code: 'custom',
          path: ['headersTimeout'],
          message: `must not be longer than server.requestTimeout (${s.headersTimeout} ms > ${s.requestTimeout} ms): the whole request cannot take less time than its headers`,
        });
    })
    .prefault({}),
  auth: z
    .strictObject({
      keys: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            // Empty (an unset `${VAR:-}`) means "no key": skipped at boot with a warning.
            key: headerToken().refine(
              (k) => k.length === 0 || k.length >= 8,
              'a client key needs at least 8 characters',
            ),
          }),
        )
        .default([]),
      /** Failed authentication per source address: over the limit, its requests get 429 until the window ends. */
      bruteForce: z
        .strictObject({
          /** Failures per window before an address is refused; 0 turns refusing off. */
          maxFailures: integer(0, 1_000_000).default(10),
          window: duration().pipe(z.number().min(1000, 'the window must be at least 1s')).default(60_000),
        })
        .prefault({}),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      /** Attempts per request across upstreams, before the first byte reaches the client. */
      maxAttempts: integer(1, 20).default(3),
      timeouts: timeoutsSchema.prefault({}),
      /** Largest single SSE event accepted from an upstream; also bounds a JSON answer held for its check. */
      maxEventBytes: size().default(16 * 1024 * 1024),
      /** Short cooldown after a transient upstream failure (5xx, network). */
      transientCooldown: duration().default(30_000),
      /**
       * Pre-output hold: on a Responses stream, response.created / in_progress wait (within these
       * bounds) for the first content event, so an in-200 failure before any output can fail over.
       */
      hold: z
        .strictObject({
          enabled: z.boolean().default(true),
          maxEvents: integer(0, 1000).default(8),
          maxBytes: size().default(64 * 1024),
          maxTime: duration().default(5_000),
        })
        .prefault({}),
    })
    .prefault({}),
  pool: z
    .strictObject({
      /** How to pick among eligible upstreams of the best priority tier. */
      // A registered selection policy (core/pool/policies.ts); checked at boot, after plugins registered theirs.
      strategy: z.string().min(1).default('round-robin'),
      affinity: z
        .strictObject({
          /** Keep a session on one upstream (prompt caching): session-id → prompt_cache_key → previous_response_id. */
          enabled: z.boolean().default(true),
          ttl: duration().default(3_600_000),
          /** Bindings kept at most; beyond, the least recently used goes. */
          maxEntries: integer(1, 10_000_000).default(100_000),
        })
        .prefault({}),
      queue: z
        .strictObject({
          /** How long a request may wait for a free slot before 429. */
          waitTimeout: duration().default(30_000),
          /** Requests waiting at once; beyond it, 429 at once. */
          maxQueue: integer(0, 100_000).default(100),
          /** `hold`: headers wait with the request. `keepalive`: a stream gets response.created, then keepalive events. */
          mode: z.enum(['hold', 'keepalive']).default('hold'),
          keepaliveInterval: duration().default(5_000),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  upstreams: z.array(upstreamBaseSchema.passthrough()).default([]),
  plugins: z.array(pluginEntrySchema).default([]),
});

export type GatewayConfig = z.output<typeof configSchema>;
export type UpstreamBaseConfig = z.output<typeof upstreamBaseSchema>;
export type PluginEntry = z.output<typeof pluginEntrySchema>;
export type Timeouts = z.output<typeof timeoutsSchema>;
