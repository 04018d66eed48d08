/**
 * Secrets are never said: not in a log line, an error body, a `response.failed` message or a
 * dashboard message. Every configured secret is collected once (client keys, the upstreams'
 * credential settings, plugin options such as the dashboard token), and the upstreams' run-time
 * credentials (e.g. refreshed OAuth tokens) are re-collected at most once a second. Free text passes
 * through `scrub`; credential-shaped strings (JWTs, `sk-…` keys, `Bearer …`) are masked too, so a
 * token is caught even before a re-collection has seen it.
 */
import type { GatewayConfig } from '../config/config-schema.js';
import { detached } from '../pool/state-key.js';
import type { Upstream } from '../pool/upstream.js';

export const REDACTED = '[redacted]';

/**
 * Settings keys whose string values are credentials: `apiKey`, `key`, `access_token`, `refreshToken`,
 * `OPENAI_API_KEY`, `clientSecret`, `password`… (whatever ends in key, token, secret or password).
 */
const SECRET_KEY = /(?:key|token|secret|password)$/i;
/** Everything under these keys is a credential (`tokens.account_id` included). */
const SECRET_CONTAINER = /^(?:tokens|credentials)$/i;

/** Shapes of credentials, masked whatever their origin. */
const PATTERNS: readonly RegExp[] = [
  /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, // a JWT (OAuth access and id tokens)
  /\bsk-[A-Za-z0-9_-]{8,}/g, // an OpenAI-style API key
  /\b(Bearer\s+)[^\s"',;]{6,}/gi, // whatever follows `Bearer`
];

/** Shorter strings are not credentials; masking them would only mangle messages. */
const MIN_SECRET_LENGTH = 4;
/** `clip` cuts free text to this much before scrubbing (a secret past it is cut away with the rest). */
const MAX_INPUT = 16_384;
/** Run-time credentials are re-collected at most this often. */
const REFRESH_EVERY_MS = 1000;

export class Secrets {
  private list: string[] = [];
  private readonly fixed = new Set<string>();

  private runtime = new Set<string>();
  private upstreams: (() => readonly Upstream[]) | undefined;
  private refreshedAt = 0;

  /** Secrets known at boot: client keys, the metrics token, upstream credentials, secret-named plugin options. */
  constructor(config: Readonly<GatewayConfig>) {
    this.collectConfig(config);
    this.rebuild();
  }

  /** A reloaded config's secrets, added to those known (an old key may still be presented or logged). */
  learn(config: Readonly<GatewayConfig>): void {
    this.collectConfig(config);
    this.rebuild();
  }

  private collectConfig(config: Readonly<GatewayConfig>): void {
    for (const k of config.auth.keys) this.addFixed(k.key);
    if (config.metrics.token !== undefined) this.addFixed(config.metrics.token);
    for (const u of config.upstreams) collect(u, this.fixed, 0, false, new Set());
    for (const p of config.plugins)
      if (typeof p === 'object') collect(p.options, this.fixed, 0, false, new Set());
  }

  /** A secret learned later (e.g. a plugin's own credential). */
  add(secret: string): void {
    this.addFixed(secret);
    this.rebuild();
  }

  /** Where the run-time credentials live: re-collected lazily, at most once a second. */
  watch(upstreams: () => readonly Upstream[]): void {
    this.upstreams = upstreams;
  }

  /**
   * Re-collects the credentials the upstream types keep at run time (`upstream.state`, e.g.
   * refreshed OAuth tokens). A bounded walk, done from `scrub` at most once a second.
   */
  private refresh(upstreams: readonly Upstream[]): void {
    const found = new Set<string>();
    const seen = new Set<object>();
    for (const u of upstreams) {
      collect(u.settings, found, 0, false, seen);
      if (typeof u.state === 'object' && u.state !== null) collect(u.state, found, 0, false, seen);
    }
    this.refreshedAt = Date.now();
    this.runtime = found;
    this.rebuild();
  }

  /** `text` with every known secret and credential-shaped string replaced by `[redacted]`. */
  scrub(text: string): string {
    if (this.upstreams !== undefined && Date.now() - this.refreshedAt > REFRESH_EVERY_MS)
      this.refresh(this.upstreams());
    let out = text;
    for (const s of this.list) if (out.includes(s)) out = out.split(s).join(REDACTED);
    for (const re of PATTERNS) {
      re.lastIndex = 0;
      if (re.test(out)) {
        re.lastIndex = 0;
        out = out.replace(re, (_m, bearer: unknown) =>
          typeof bearer === 'string' ? bearer + REDACTED : REDACTED,
        );
      }
    }
    return out;
  }

  /**
   * `scrub`, then cut to `max` characters (after scrubbing, so a cut never leaves part of a secret).
   * A cut is copied: callers keep it (the dashboard's recent requests), and a slice would keep the
   * whole original alive, e.g. a model name as long as the body limit.
   */
  clip(text: string, max: number): string {
    const out = this.scrub(text.length > MAX_INPUT ? text.slice(0, MAX_INPUT) : text);
    if (out.length > max) return detached(out.slice(0, max - 1) + '…');
    return text.length > max ? detached(out) : out;
  }

  /** Whether `text` is, or holds, a secret (e.g. a client-chosen id that must not be echoed). */
  holdsSecret(text: string): boolean {
    return this.scrub(text) !== text;
  }

  private addFixed(s: unknown): void {
    if (typeof s === 'string' && s.trim().length >= MIN_SECRET_LENGTH) this.fixed.add(s);
  }

  private rebuild(): void {
    const all = new Set<string>();
    for (const s of [...this.fixed, ...this.runtime]) {
      if (s.trim().length < MIN_SECRET_LENGTH) continue;
      all.add(s);
      // The same secret as it appears inside JSON or a URL.
      const json = JSON.stringify(s).slice(1, -1);
      if (json !== s) all.add(json);
      const url = encodeURIComponent(s);
      if (url !== s) all.add(url);
    }
    // Longest first, so a secret that contains another is masked whole.
    this.list = [...all].sort((a, b) => b.length - a.length);
  }
}

/** Collects credential strings from a settings or state object: bounded depth and node count. */
function collect(value: unknown, out: Set<string>, depth: number, secret: boolean, seen: Set<object>): void {
  if (typeof value === 'string') {
    if (secret && value.trim().length >= MIN_SECRET_LENGTH) out.add(value);
    return;
  }
  if (typeof value !== 'object' || value === null || depth > 4 || seen.size > 2000) return;
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1, secret, seen);
    return;
  }
  // Plain data only: class instances other than plain objects (agents, loggers, sockets) are skipped,
  // except one level of the plugin's own state objects.
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null && depth > 2) return;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'function') continue;
    const key = k.replace(/[-_]/g, '');
    collect(v, out, depth + 1, secret || SECRET_KEY.test(key) || SECRET_CONTAINER.test(key), seen);
  }
}
