/** The schema of config.yaml. Every object is strict: an unknown key fails at boot. */
import { z } from 'zod';
import { duration, headerToken, integer, period, size } from './units.js';
import { isListenAddress, LISTEN_FORMAT } from './listen-address.js';

export const pluginEntrySchema = z.union([
  z.string().min(1),
  z.strictObject({
    name: z.string().min(1),
    options: z.record(z.string(), z.unknown()).optional(),
  }),
]);

export const timeoutsSchema = z.strictObject({
  connect: duration().default(10_000).meta({
    description: 'TCP (and TLS) connect to an upstream. Then `504`.',
    docType: 'duration',
    docDefault: '`10s`',
  }),
  firstByte: duration().default(300_000).meta({
    description: "From the connection until the upstream's response headers arrive. Then `504`.",
    docType: 'duration',
    docDefault: '`5m`',
  }),
  idle: duration().default(300_000).meta({
    description:
      'Longest silence between two chunks of an upstream response. Then `504` or `response.failed`.',
    docType: 'duration',
    docDefault: '`5m`',
  }),
  total: duration().default(3_600_000).meta({
    description:
      'The whole request, from its arrival: queue wait, every attempt and the stream. Comment pings keep `idle` from firing; this still ends the request: `504` before output, or `response.failed` (`request_timeout`) after. Never retried, no cooldown. `0`: off.',
    docType: 'duration',
    docDefault: '`1h`',
  }),
});

/** Keys every upstream has; each type adds its own (see the type's plugin). */
export const upstreamBaseSchema = z.object({
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, dot, dash and underscore')
    .meta({
      description: 'Unique; letters, digits, `.`, `_`, `-`.',
      docType: 'string',
      docDefault: '(required)',
    }),
  type: z.string().min(1).meta({
    description: 'The upstream type; a plugin provides it (`openai` and `codex` come with tapgate).',
    docType: 'string',
    docDefault: '(required)',
  }),
  models: z.array(z.string()).default([]).meta({
    description: 'Models this upstream serves; empty means any. Also what `GET /v1/models` lists.',
    docType: 'list of strings',
    docDefault: '`[]`',
  }),
  maxConcurrency: integer(0, 100_000).default(0).meta({
    description:
      'Requests in flight at once (0: unlimited). A full upstream is skipped; if every one is full, the request waits in the queue (`pool.queue`).',
    docType: 'integer',
    docDefault: '`0`',
  }),
  weight: integer(1, 1000).default(1).meta({
    description:
      '1–1000. Share of picks for `round-robin`, and the divisor of in-flight for `least-in-flight`.',
    docType: 'integer',
    docDefault: '`1`',
  }),
  priority: integer(0, 1000).default(0).meta({
    description:
      '0–1000, lower is preferred. Higher tiers are used only when no lower-tier upstream can take the attempt.',
    docType: 'integer',
    docDefault: '`0`',
  }),
  timeouts: timeoutsSchema.partial().optional().meta({
    description:
      '`connect`, `firstByte`, `idle` and `total` for this upstream, each overriding `proxy.timeouts` (a queue wait, before any upstream is chosen, uses `proxy.timeouts.total`).',
    docType: 'object',
    docDefault: '—',
  }),
});

/** `auth.keys[].limits`: every key optional; a key without one is not limited on it. */
export const keyLimitsSchema = z.strictObject({
  requestsPerMinute: integer(1, 1e12).optional().meta({
    description:
      'Requests admitted per UTC minute. The next one gets `429 rate_limit_exceeded` until the minute ends.',
    docType: 'integer',
    docDefault: '—',
  }),
  tokensPerMinute: integer(1, 1e15).optional().meta({
    description:
      "Tokens (the answer's `usage.total_tokens`) per UTC minute. Checked at admission against tokens already used (`used >= limit`: 429), charged when the answer ends: a request admitted under the limit runs to its end.",
    docType: 'integer',
    docDefault: '—',
  }),
  tokensPerDay: integer(1, 1e15).optional().meta({
    description:
      'Tokens per UTC day, like `tokensPerMinute`. Its 429 carries `x-should-retry: false`: SDKs do not retry for hours.',
    docType: 'integer',
    docDefault: '—',
  }),
  tokensPerMonth: integer(1, 1e15).optional().meta({
    description: 'Tokens per UTC calendar month (a budget), like `tokensPerDay`.',
    docType: 'integer',
    docDefault: '—',
  }),
  concurrency: integer(1, 100_000).optional().meta({
    description:
      'Requests of this key in flight at once (with `state.store: redis`, across every instance). One more gets 429 (`Retry-After: 1`).',
    docType: 'integer',
    docDefault: '—',
  }),
  models: z
    .array(z.string().min(1).max(256))
    .min(1, 'list at least one model, or leave `models` out to allow any')
    .optional()
    .meta({
      description:
        'The models this key may use; `*` matches any text (`gpt-5*`). Any other model gets `403 model_not_allowed` before an upstream is contacted.',
      docType: 'list of strings',
      docDefault: 'any model',
    }),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('127.0.0.1').meta({
        description:
          'Listen address. A non-loopback host (`0.0.0.0`) requires at least one `auth.keys` entry.',
        docType: 'string',
        docDefault: '`127.0.0.1`',
      }),
      port: integer(0, 65535).default(8787).meta({
        description: 'Listen port, 0–65535 (`0`: any free port). `--port` overrides it.',
        docType: 'integer',
        docDefault: '`8787`',
      }),
      bodyLimit: size()
        .default(16 * 1024 * 1024)
        .meta({
          description: 'Largest request body, also after decompression. Larger bodies get `413`.',
          docType: 'size',
          docDefault: '`16mb`',
        }),
      maxJsonDepth: integer(1, 10_000).default(128).meta({
        description:
          'Deepest nesting of a JSON request body (the top-level object is level 1). A deeper body gets `400` before it is parsed.',
        docType: 'integer',
        docDefault: '`128`',
      }),
      maxJsonValues: integer(1, 100_000_000).default(1_000_000).meta({
        description:
          'Most values in a JSON request body (the object, each array element, each member). More gets `400` before it is parsed.',
        docType: 'integer',
        docDefault: '`1000000`',
      }),
      drainTimeout: duration().default(30_000).meta({
        description: 'On shutdown, how long in-flight requests may take to finish.',
        docType: 'duration',
        docDefault: '`30s`',
      }),
      headersTimeout: duration().default(30_000).meta({
        description: 'Slow-client guard: time allowed to send the request headers (`408`).',
        docType: 'duration',
        docDefault: '`30s`',
      }),
      requestTimeout: duration().default(120_000).meta({
        description: 'Time allowed to send the whole request.',
        docType: 'duration',
        docDefault: '`2m`',
      }),
      keepAliveTimeout: duration().default(65_000).meta({
        description: 'How long an idle client connection is kept open.',
        docType: 'duration',
        docDefault: '`65s`',
      }),
      maxConnections: integer(1, 10_000_000).optional().meta({
        description:
          'Client connections held at once; more are closed as soon as they are accepted. Default: half of what the soft file-descriptor limit (`ulimit -n`) leaves after 64, at least 64 (480 with `ulimit -n 1024`), since each connection may need an upstream socket too. Logged at boot. Per process with `workers > 1`.',
        docType: 'integer',
        docDefault: 'from the fd limit',
      }),
      sendTimeout: duration().default(60_000).meta({
        description:
          'A client that stops reading: how long output the gateway wrote may stay undrained before the connection is dropped, its upstream request cancelled and its slot freed (`CLIENT_STALLED` in the access line). The clock restarts whenever the client drains, so a slow but steady reader is never cut. `0`: off.',
        docType: 'duration',
        docDefault: '`60s`',
      }),
      workers: z
        .union([z.literal('auto'), integer(1, 256)])
        .default(1)
        .meta({
          description: 'Processes serving the port (node:cluster); `auto` is one per core. See below.',
          docType: 'integer or `auto`',
          docDefault: '`1`',
        }),
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
            limits: keyLimitsSchema.optional(),
          }),
        )
        .superRefine((keys, ctx) => {
          // Limits count per key name: two entries of one name would share (or split) one budget.
          const seen = new Set<string>();
          keys.forEach((k, i) => {
            if (seen.has(k.name) && keys.some((o) => o.name === k.name && o.limits !== undefined))
              ctx.addIssue({
                code: 'custom',
                path: [i, 'name'],
                message: `duplicate key name "${k.name}": limits count per name, so a key with limits needs a name of its own`,
              });
            seen.add(k.name);
          });
        })
        .default([])
        .meta({
          description:
            'Client keys. `name` shows in logs and usage records; `key` needs at least 8 characters; `limits` (optional) caps what the key may use (see below). An empty `key` (an unset `${VAR:-}`) is skipped with a warning. With no key, tapgate serves unauthenticated requests on a loopback host only.',
          docType: 'list of `{name, key, limits}`',
          docDefault: '`[]`',
        }),
      /** Failed authentication per source address: over the limit, its requests get 429 until the window ends. */
      bruteForce: z
        .strictObject({
          maxFailures: integer(0, 1_000_000).default(10).meta({
            description:
              'Failed authentications (a wrong or missing key) from one address within `bruteForce.window` before that address gets `429 too_many_auth_failures` until the window ends, even with the right key. `0`: never refused (log lines are still aggregated).',
            docType: 'integer',
            docDefault: '`10`',
          }),
          window: duration()
            .pipe(z.number().min(1000, 'the window must be at least 1s'))
            .default(60_000)
            .meta({
              description: "The failure window, from an address's first failure (at least `1s`).",
              docType: 'duration',
              docDefault: '`1m`',
            }),
        })
        .prefault({}),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      transport: z.enum(['undici', 'http-proxy-3']).default('undici').meta({
        description:
          "How attempts reach an upstream: `undici` (a keep-alive pool per upstream, the cheaper) or `http-proxy-3` (Node's http client with a keep-alive agent per upstream). A reload applies it to new attempts.",
        docType: 'enum',
        docDefault: '`undici`',
      }),
      maxAttempts: integer(1, 20).default(3).meta({
        description:
          'Attempts per request across upstreams (1–20). Retries happen only before the client got a response.',
        docType: 'integer',
        docDefault: '`3`',
      }),
      timeouts: timeoutsSchema.prefault({}),
      maxEventBytes: size()
        .default(16 * 1024 * 1024)
        .meta({
          description:
            'Largest single SSE event, and largest non-streamed JSON answer, accepted from an upstream.',
          docType: 'size',
          docDefault: '`16mb`',
        }),
      transientCooldown: duration().default(30_000).meta({
        description:
          'How long an upstream rests after a `5xx`, `401`/`403` or network failure, or a `429` without `Retry-After`.',
        docType: 'duration',
        docDefault: '`30s`',
      }),
      /**
       * Pre-output hold: on a Responses stream, response.created / in_progress wait (within these
       * bounds) for the first content event, so an in-200 failure before any output can fail over.
       */
      hold: z
        .strictObject({
          enabled: z.boolean().default(true).meta({
            description:
              'Pre-output hold (see [Failover](#failover)): `response.created`/`in_progress` wait for the first content event.',
            docType: 'boolean',
            docDefault: '`true`',
          }),
          maxEvents: integer(0, 1000).default(8).meta({
            description: 'At most this many events are held; then they go out.',
            docType: 'integer',
            docDefault: '`8`',
          }),
          maxBytes: size()
            .default(64 * 1024)
            .meta({
              description: 'At most this much is held; then it goes out.',
              docType: 'size',
              docDefault: '`64kb`',
            }),
          maxTime: duration().default(5_000).meta({
            description: 'At most this long; then what is held goes out.',
            docType: 'duration',
            docDefault: '`5s`',
          }),
        })
        .prefault({}),
    })
    .prefault({}),
  pool: z
    .strictObject({
      // A registered selection policy (core/pool/policies.ts); checked at boot, after plugins registered theirs.
      strategy: z.string().min(1).default('round-robin').meta({
        description:
          "Within the best priority tier, a registered selection policy: `round-robin` (smooth, by `weight`), `least-in-flight` (in-flight ÷ weight), `fill-first` (config order: one account's prompt cache stays warm), `most-headroom` (the account whose most-used quota window, as its provider reports it (Codex: 5-hour and weekly), is the least used; an account that reported none counts as unused; ties by in-flight ÷ weight), or one a plugin registers (`context.selectionPolicies.register(name, factory)`). An unknown name stops the boot.",
        docType: 'string',
        docDefault: '`round-robin`',
      }),
      affinity: z
        .strictObject({
          enabled: z.boolean().default(true).meta({
            description:
              'Keep a session on one upstream. The key is the `session-id`/`session_id` header, else `prompt_cache_key`, else `previous_response_id`.',
            docType: 'boolean',
            docDefault: '`true`',
          }),
          ttl: duration().default(3_600_000).meta({
            description:
              'How long an idle binding lives. A binding is dropped when its upstream cools down or is disabled; while it is only busy, the request goes elsewhere and the binding stays.',
            docType: 'duration',
            docDefault: '`1h`',
          }),
          maxEntries: integer(1, 10_000_000).default(100_000).meta({
            description:
              'Session bindings kept at most. When full, expired bindings go first, then the least recently used.',
            docType: 'integer',
            docDefault: '`100000`',
          }),
        })
        .prefault({}),
      queue: z
        .strictObject({
          waitTimeout: duration().default(30_000).meta({
            description:
              'When every upstream for the model is at `maxConcurrency`, a request waits this long for a slot, then gets `429` "Too many pending requests" with `Retry-After`.',
            docType: 'duration',
            docDefault: '`30s`',
          }),
          maxQueue: integer(0, 100_000).default(100).meta({
            description: 'Requests waiting at once; beyond it, `429` at once.',
            docType: 'integer',
            docDefault: '`100`',
          }),
          mode: z.enum(['hold', 'keepalive']).default('hold').meta({
            description:
              '`hold`: a waiting request gets nothing until it has a slot (safe: Codex has no timeout before headers). `keepalive`: a streamed Responses request gets `response.created` (status `queued`) at once, then `{"type":"keepalive"}` data events, which reset Codex\'s idle timer where `: ping` comments do not; the upstream\'s own events follow, renumbered.',
            docType: 'enum',
            docDefault: '`hold`',
          }),
          keepaliveInterval: duration().default(5_000).meta({
            description: 'How often a `keepalive` event goes out in `keepalive` mode.',
            docType: 'duration',
            docDefault: '`5s`',
          }),
        })
        .prefault({}),
    })
    .prefault({}),
  state: z
    .strictObject({
      store: z.enum(['memory', 'redis']).default('memory').meta({
        description:
          'Where pool state lives (cooldowns, disabled accounts, session bindings, concurrency slots, Codex token refresh). `memory`: this process only. `redis`: shared by every worker and every instance on the same Redis (see [Running several instances](#running-several-instances)).',
        docType: 'enum',
        docDefault: '`memory`',
      }),
      url: z
        .string()
        .regex(/^rediss?:\/\/[^\s]+$/, 'expected a redis:// or rediss:// URL')
        .optional()
        .meta({
          description:
            'With `store: redis`: the server, as `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS); `${REDIS_URL}` works. The password is kept out of logs.',
          docType: 'string',
          docDefault: '—',
        }),
      keyPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits and _ . : - only, 1 to 64 characters')
        .default('tapgate:')
        .meta({
          description:
            'Prefix of every key and channel tapgate uses. Instances share state only with the same prefix; two deployments on one Redis use two prefixes.',
          docType: 'string',
          docDefault: '`tapgate:`',
        }),
      timeout: duration()
        .pipe(z.number().min(10, 'at least 10ms').max(10_000, 'at most 10s'))
        .default(250)
        .meta({
          description:
            "Longest wait for one Redis operation on a request path. Past it (or with Redis down), that operation uses this process's own state and the request goes on.",
          docType: 'duration',
          docDefault: '`250ms`',
        }),
      leaseTtl: duration()
        .pipe(z.number().min(1000, 'at least 1s').max(300_000, 'at most 5m'))
        .default(10_000)
        .meta({
          description:
            'A concurrency slot held in Redis is a lease renewed every third of this; the slots of a process that died come back within it.',
          docType: 'duration',
          docDefault: '`10s`',
        }),
    })
    .superRefine((s, ctx) => {
      if (s.store === 'redis' && s.url === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['store'],
          message: 'store: redis needs state.url (redis://host:port)',
        });
      if (s.store === 'memory' && s.url !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: 'state.url is set but state.store is memory: set store: redis to use it',
        });
    })
    .prefault({}),
  usage: z
    .strictObject({
      enabled: z.boolean().default(true).meta({
        description:
          'One usage record per request (time, client key, account, model, route, outcome, tokens, durations), written in batches off the request path. `false`: nothing is recorded and SQLite is not loaded.',
        docType: 'boolean',
        docDefault: '`true`',
      }),
      path: z.string().min(1).default('data/usage.db').meta({
        description:
          "The SQLite file (relative to the config file's folder; the folder is created). Every worker writes the same file; `tapgate usage` reads it, also while the gateway runs. A file that is no SQLite database stops the boot and is left as it is.",
        docType: 'string',
        docDefault: '`data/usage.db`',
      }),
      retention: period()
        .pipe(z.number().min(86_400_000, 'at least 1d'))
        .default(90 * 86_400_000)
        .meta({
          description:
            'Records older than this are deleted (at boot, then hourly). Daily totals per key, account and model are kept for at least 400 days.',
          docType: 'period',
          docDefault: '`90d`',
        }),
      flushInterval: duration()
        .pipe(z.number().min(10, 'at least 10ms').max(60_000, 'at most 1m'))
        .default(1000)
        .meta({
          description:
            'How often the batch of finished requests is written, in one transaction (sooner when it reaches 2000 records). A graceful stop writes what is left.',
          docType: 'duration',
          docDefault: '`1s`',
        }),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true).meta({
        description:
          'Prometheus metrics (`GET /metrics`, prom-client): requests, durations, tokens, pool state and process metrics. `false`: nothing is counted and no listener opens.',
        docType: 'boolean',
        docDefault: '`true`',
      }),
      listen: z
        .union([z.literal(false), z.string().refine(isListenAddress, LISTEN_FORMAT)])
        .optional()
        .meta({
          description:
            "A listener of its own for `/metrics`, `/healthz` and `/readyz`, as `host:port` (IPv6 in brackets, quoted in YAML: `'[::1]:9464'`; port `0` picks a free one). `''` or `false`: none. Set explicitly, a port in use stops the boot; the default one in use (another instance on this host) is skipped with a warning. With `server.workers` above 1 the primary serves it, with every worker's metrics added up.",
          docType: 'string',
          docDefault: '`127.0.0.1:9464`',
        }),
      token: z.string().min(16, 'a metrics token needs at least 16 characters').optional().meta({
        description:
          '`GET /metrics` on the main port too, for `Authorization: Bearer <token>` (others get `401`). Without it the main port does not serve metrics. A secret: kept out of logs.',
        docType: 'string',
        docDefault: '—',
      }),
      path: z
        .string()
        .regex(/^\/[A-Za-z0-9._~/-]*$/, 'a path such as /metrics')
        .default('/metrics')
        .meta({
          description: 'Where the metrics are served, on the listener and (with `token`) on the main port.',
          docType: 'string',
          docDefault: '`/metrics`',
        }),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').meta({
        description:
          '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Logs go to stdout, as `format` says.',
        docType: 'enum',
        docDefault: '`info`',
      }),
      format: z.enum(['auto', 'json', 'pretty']).default('auto').meta({
        description:
          'How stdout logs look. `json`: JSON lines (pino). `pretty`: one readable line each (time, level, message, `key=value` fields), in color on a terminal unless `NO_COLOR` is set. `auto`: `pretty` when stdout is a terminal and `CI` is unset, else `json`.',
        docType: 'enum',
        docDefault: '`auto`',
      }),
    })
    .prefault({}),
  upstreams: z.array(upstreamBaseSchema.passthrough()).default([]),
  plugins: z.array(pluginEntrySchema).default([]),
});

export type GatewayConfig = z.output<typeof configSchema>;
export type UpstreamBaseConfig = z.output<typeof upstreamBaseSchema>;
export type PluginEntry = z.output<typeof pluginEntrySchema>;
export type Timeouts = z.output<typeof timeoutsSchema>;
export type StateConfig = GatewayConfig['state'];
export type UsageConfig = GatewayConfig['usage'];
export type MetricsConfig = GatewayConfig['metrics'];
