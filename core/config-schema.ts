/** The schema of config.yaml. Every object is strict: an unknown key fails at boot. */
import { z } from 'zod';
import { duration, integer, size } from './units.js';

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
      /** On SIGTERM, how long in-flight requests may take to finish. */
      drainTimeout: duration().default(30_000),
      /** Slow-client guard: time allowed to send the request headers. */
      headersTimeout: duration().default(30_000),
      /** Time allowed to send the whole request. */
      requestTimeout: duration().default(120_000),
      keepAliveTimeout: duration().default(65_000),
      /**
       * A client that does not read: how long the response may wait for the client to drain what
       * was written before the connection is dropped (and its upstream slot freed). 0 turns it off.
       */
      sendTimeout: duration().default(60_000),
      /** Processes serving the port (node:cluster): a number, or `auto` for one per core. */
      workers: z.union([z.literal('auto'), integer(1, 256)]).default(1),
    })
    .prefault({}),
  auth: z
    .strictObject({
      keys: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            // Empty (an unset `${VAR:-}`) means "no key": skipped at boot with a warning.
            key: z
              .string()
              .refine((k) => k.length === 0 || k.length >= 8, 'a client key needs at least 8 characters'),
          }),
        )
        .default([]),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      /** Attempts per request across upstreams, before the first byte reaches the client. */
      maxAttempts: integer(1, 20).default(3),
      timeouts: timeoutsSchema.prefault({}),
      /** Largest single SSE event accepted from an upstream. */
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
      strategy: z.enum(['round-robin', 'least-in-flight', 'fill-first']).default('round-robin'),
      affinity: z
        .strictObject({
          /** Keep a session on one upstream (prompt caching): session-id → prompt_cache_key → previous_response_id. */
          enabled: z.boolean().default(true),
          ttl: duration().default(3_600_000),
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
