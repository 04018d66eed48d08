/**
 * Turns the config's `upstreams` entries into Upstream objects: the one place that does (boot, and
 * every reload). It remembers each object's validated config, so a reload keeps an unchanged one.
 */
import { dirname } from 'node:path';
import { upstreamBaseSchema, type GatewayConfig } from '../config/config-schema.js';
import type { ConfigSource } from '../config/config.js';
import {
  Upstream,
  UpstreamExpandError,
  type UpstreamTypeDefinition,
  type UpstreamTypeRegistry,
} from './upstream.js';

export interface BuiltUpstreams {
  /** The pool's list, in config order: kept objects and new ones. */
  list: Upstream[];
  /** The new objects (their type's `init` ran). */
  created: Upstream[];
}

export class UpstreamBuilder {
  /** Each object's validated config, and the gateway-wide timeouts it inherits. */
  private readonly specs = new WeakMap<Upstream, unknown>();

  constructor(
    private readonly types: UpstreamTypeRegistry,
    /** Frees an object built for a config that is then refused. */
    private readonly release: (u: Upstream) => void,
  ) {}

  /** What makes `u` the same upstream as a later entry (compared with isDeepStrictEqual). */
  specOf(u: Upstream): unknown {
    return this.specs.get(u);
  }

  /**
   * The one place config entries become Upstream objects (a reload runs it again). A type's `expand`
   * may turn one entry into several (an `auth:` folder): each is validated and named like an entry
   * of its own, and its errors point at the entry it came from. Every entry is validated before any
   * is built, so a bad config builds nothing. `reuse` (a reload) gives back the running object for
   * an upstream whose validated config is unchanged; `created` are the new objects (`init` ran).
   */
  build(
    config: GatewayConfig,
    source: ConfigSource,
    reuse?: (name: string, spec: unknown) => Upstream | undefined,
  ): BuiltUpstreams {
    const issues = [];
    const planned: {
      def: UpstreamTypeDefinition;
      raw: Record<string, unknown>;
      value: Record<string, unknown> & { baseUrl: string; name: string };
    }[] = [];
    const names = new Set<string>();
    const context = { configDir: dirname(source.file) };
    for (let i = 0; i < config.upstreams.length; i++) {
      const entry = config.upstreams[i]! as Record<string, unknown>;
      const def = this.types.get(String(entry.type));
      if (def === undefined) {
        const known = this.types.names();
        issues.push({
          path: ['upstreams', i, 'type'],
          ...source.locate(['upstreams', i, 'type']),
          message: `unknown upstream type "${String(entry.type)}"; known types: ${known.length > 0 ? known.join(', ') : '(none: enable a plugin that provides one)'}`,
        });
        continue;
      }
      let raws: Record<string, unknown>[];
      try {
        raws = def.expand?.(entry, context) ?? [entry];
      } catch (err) {
        if (!(err instanceof UpstreamExpandError)) throw err;
        const path = err.key === undefined ? ['upstreams', i] : ['upstreams', i, err.key];
        issues.push({ path, ...source.locate(path), message: err.message });
        continue;
      }
      // Strict per type: the base keys plus the type's own, nothing else.
      const schema = upstreamBaseSchema.extend(def.schema.shape).strict();
      for (const raw of raws) {
        const parsed = schema.safeParse(raw);
        if (!parsed.success) {
          issues.push(...source.issuesFrom(parsed.error, ['upstreams', i]));
          continue;
        }
        const value = parsed.data as Record<string, unknown> & { baseUrl: string; name: string };
        if (names.has(value.name)) {
          issues.push({
            path: ['upstreams', i, 'name'],
            ...source.locate(['upstreams', i, 'name']),
            message: `duplicate upstream name "${value.name}"`,
          });
          continue;
        }
        names.add(value.name);
        planned.push({ def, raw, value });
      }
    }
    if (issues.length > 0) throw source.error(issues as never);
    const list: Upstream[] = [];
    const created: Upstream[] = [];
    try {
      for (const { def, raw, value } of planned) {
        // What makes it the same upstream: its keys, and the gateway-wide timeouts it inherits.
        const spec = { value, timeouts: config.proxy.timeouts };
        const kept = reuse?.(value.name, spec);
        if (kept !== undefined) {
          list.push(kept);
          continue;
        }
        const base = upstreamBaseSchema.parse(raw);
        const upstream = new Upstream(base, value, config.proxy.timeouts);
        this.specs.set(upstream, spec);
        created.push(upstream);
        upstream.state = def.init?.(upstream, context);
        list.push(upstream);
      }
    } catch (err) {
      // A reload's init failed: what it built so far goes, the running upstreams stay.
      for (const u of created) this.release(u);
      throw err;
    }
    return { list, created };
  }
}
