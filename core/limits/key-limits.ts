/**
 * Per-key limits (`auth.keys[].limits`), as OpenAI applies its own: requests per minute, tokens per
 * minute, day and month, requests at once, and the models a key may use.
 *
 * At admission (right after authentication, before the body is read) every window is checked and
 * the request counted; tokens are checked against what the key already used (`used >= limit` →
 * refused) and charged at `finish` from `ctx.usage`, so a request admitted under a limit runs to
 * its end even if it goes over: a stream in flight is never cut. Requests at once are leases in the
 * pool-state store under a name no upstream can have (`key:<name>`: upstream names have no colon),
 * so with Redis they hold for the cluster and a dead process's leases expire like an upstream's.
 * The model check needs the body: the pipeline calls `checkModel` once it is parsed.
 *
 * Every response of a limited key carries `x-ratelimit-*` (set on the response at admission, so every
 * later head has them); an upstream's own describe a pooled account and are dropped.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { RequestContext } from '../kernel/context.js';
import { createStateKey } from '../kernel/context.js';
import { KeyRateLimitError, ModelNotAllowedError, type GatewayError } from '../kernel/errors.js';
import type { PoolStateStore } from '../pool/pool-state.js';
import type { LimitCount, LimitStore } from '../state/limit-store.js';
import { truncate } from '../observe/truncate.js';
import { resetText, windowAt, type CounterWindow, type WindowKind } from './windows.js';

/** `auth.keys[].limits` as the schema gives it. */
export interface KeyLimitsConfig {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  tokensPerDay?: number;
  tokensPerMonth?: number;
  concurrency?: number;
  models?: string[];
}

interface TokenRule {
  kind: WindowKind;
  limit: number;
  /** The counter id's prefix, e.g. `td`. */
  prefix: string;
  what: string;
}

interface KeyRule {
  name: string;
  requestsPerMinute: number;
  tokens: TokenRule[];
  concurrency: number;
  /** Where its concurrency leases live in the pool-state store. */
  slotName: string;
  models: RegExp | undefined;
}

/** One admitted request of a limited key: what `finish` gives back and charges. */
interface Ticket {
  rule: KeyRule;
  /** Holds a concurrency lease, released once. */
  slot: boolean;
  admitted: boolean;
}

const TICKET = createStateKey<Ticket | undefined>('tapgate:key-limits', () => undefined);

const TOKEN_WINDOWS: readonly {
  field: keyof KeyLimitsConfig;
  kind: WindowKind;
  prefix: string;
  what: string;
}[] = [
  { field: 'tokensPerMinute', kind: 'minute', prefix: 'tm', what: 'tokens per minute' },
  { field: 'tokensPerDay', kind: 'day', prefix: 'td', what: 'tokens per day' },
  { field: 'tokensPerMonth', kind: 'month', prefix: 'tM', what: 'tokens per month' },
];

export interface KeyLimitsOptions {
  store: LimitStore;
  /** Concurrency leases: the pool's state store (shared with Redis). */
  slots: PoolStateStore;
  /** Epoch ms; the gateway's `clock` option (tests move it to see windows reset). */
  clock: () => number;
}

type LimitedKey = { name: string; key: string; limits?: KeyLimitsConfig | undefined };

export class KeyLimits {
  private constructor(
    private rules: ReadonlyMap<string, KeyRule>,
    private readonly options: KeyLimitsOptions,
  ) {}

  /** The limits of the configured keys, even when none has any (a reload may add some). */
  static forKeys(keys: readonly LimitedKey[], options: KeyLimitsOptions): KeyLimits {
    return new KeyLimits(rulesOf(keys), options);
  }

  /**
   * A config reload's keys: new requests are admitted by these rules. A request admitted earlier
   * keeps its own rule (in its ticket) to the end: its lease and its tokens go back where they came from.
   */
  replaceKeys(keys: readonly LimitedKey[]): void {
    this.rules = rulesOf(keys);
  }

  /** Whether the request's key has limits (its responses then carry the gateway's headers). */
  limited(ctx: RequestContext): boolean {
    return ctx.peekState(TICKET) !== undefined;
  }

  /**
   * Admission: counts the request, or rejects with the 429. Undefined (nothing to wait for, no
   * promise made) for a key without limits.
   */
  admit(ctx: RequestContext): Promise<void> | undefined {
    const name = ctx.clientName;
    const rule = name === undefined ? undefined : this.rules.get(name);
    return rule === undefined ? undefined : this.admitLimited(ctx, rule);
  }

  private async admitLimited(ctx: RequestContext, rule: KeyRule): Promise<void> {
    const ticket: Ticket = { rule, slot: false, admitted: false };
    ctx.setState(TICKET, ticket);
    const now = this.options.clock();
    const requests = rule.requestsPerMinute > 0 ? requestWindow(rule, now) : undefined;
    const tokens = tokenWindows(rule, now);
    const { store, slots } = this.options;
    // A key limited only in concurrency or models has no window to count: no store round trip.
    const count: LimitCount =
      requests === undefined && tokens.length === 0
        ? { admitted: true, requests: 0, tokens: [] }
        : await store.admit({ key: rule.name, requests, tokens });
    if (!count.admitted) {
      setHeaders(ctx, rule, requests, tokens, count, now);
      throw refusal(ctx, rule, requests, tokens, count, now);
    }
    if (rule.concurrency > 0) {
      const got = slots.acquire(rule.slotName, rule.concurrency);
      if (got === false || (got !== true && !(await got))) {
        // Not served: its request is not counted after all.
        if (requests !== undefined) {
          store.refund(rule.name, requests);
          count.requests--;
        }
        setHeaders(ctx, rule, requests, tokens, count, now);
        throw new KeyRateLimitError(
          `Rate limit reached for concurrent requests on key "${rule.name}": Limit ${rule.concurrency}, Used ${rule.concurrency}. Please try again in 1s.`,
          { retryAfter: 1, phase: 'admission' },
        );
      }
      ticket.slot = true;
    }
    ticket.admitted = true;
    setHeaders(ctx, rule, requests, tokens, count, now);
  }

  /** Once the body is parsed, before any upstream: a key with `models` may use only those. */
  checkModel(ctx: RequestContext): void {
    const models = ctx.peekState(TICKET)?.rule.models;
    if (models === undefined || ctx.route?.jsonBody !== true) return;
    const name = ctx.clientName!;
    const model = ctx.model;
    if (model === undefined)
      throw new ModelNotAllowedError(
        `The API key "${name}" may use only the models its limits list; this request names none`,
        { param: 'model', phase: 'admission' },
      );
    if (!models.test(model))
      throw new ModelNotAllowedError(
        `The API key "${name}" may not use model "${truncate(model, 128)}" (auth.keys[].limits.models)`,
        { param: 'model', phase: 'admission' },
      );
  }

  /** The request ended (every path, once): its lease goes back and its tokens are charged. */
  finish(ctx: RequestContext): void {
    const ticket = ctx.peekState(TICKET);
    if (ticket === undefined) return;
    const rule = ticket.rule;
    if (ticket.slot) {
      ticket.slot = false;
      this.options.slots.release(rule.slotName);
    }
    const total = ctx.usage?.total ?? 0;
    if (!ticket.admitted || total <= 0 || rule.tokens.length === 0) return;
    this.options.store.charge(rule.name, tokenWindows(rule, this.options.clock()), total);
  }

  /** A limited key's response: the upstream's `x-ratelimit-*` (a pooled account's) give way to the key's. */
  dropUpstreamHeaders(ctx: RequestContext): void {
    const headers = ctx.responseHeaders;
    if (headers === undefined || ctx.peekState(TICKET) === undefined) return;
    for (const h of Object.keys(headers)) if (h.startsWith('x-ratelimit-')) delete headers[h];
  }
}

function ruleOf(name: string, l: KeyLimitsConfig): KeyRule | undefined {
  const tokens: TokenRule[] = [];
  for (const t of TOKEN_WINDOWS) {
    const limit = l[t.field] as number | undefined;
    if (limit !== undefined) tokens.push({ kind: t.kind, limit, prefix: t.prefix, what: t.what });
  }
  const rule: KeyRule = {
    name,
    requestsPerMinute: l.requestsPerMinute ?? 0,
    tokens,
    concurrency: l.concurrency ?? 0,
    slotName: 'key:' + name,
    models: l.models === undefined ? undefined : modelPattern(l.models),
  };
  const none =
    rule.requestsPerMinute === 0 &&
    tokens.length === 0 &&
    rule.concurrency === 0 &&
    rule.models === undefined;
  return none ? undefined : rule;
}

/** `gpt-5*` style names → one anchored pattern; only `*` is special. */
export function modelPattern(models: readonly string[]): RegExp {
  const alts = models.map((m) =>
    m
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*'),
  );
  return new RegExp(`^(?:${alts.join('|')})$`, 's');
}

function requestWindow(rule: KeyRule, now: number): CounterWindow {
  const w = windowAt('minute', now);
  return { id: 'rm:' + w.key, end: w.end, limit: rule.requestsPerMinute };
}

function tokenWindows(rule: KeyRule, now: number): CounterWindow[] {
  return rule.tokens.map((t) => {
    const w = windowAt(t.kind, now);
    return { id: `${t.prefix}:${w.key}`, end: w.end, limit: t.limit };
  });
}

/** The window the request waits longest for, among those used up, and its words. */
function refusal(
  ctx: RequestContext,
  rule: KeyRule,
  requests: CounterWindow | undefined,
  tokens: readonly CounterWindow[],
  count: LimitCount,
  now: number,
): GatewayError {
  let worst: { end: number; limit: number; used: number; what: string; budget: boolean } | undefined;
  const consider = (w: CounterWindow, used: number, what: string, budget: boolean) => {
    if (used >= w.limit && (worst === undefined || w.end > worst.end))
      worst = { end: w.end, limit: w.limit, used, what, budget };
  };
  if (requests !== undefined) consider(requests, count.requests, 'requests per minute', false);
  tokens.forEach((w, i) =>
    consider(w, count.tokens[i] ?? 0, rule.tokens[i]!.what, rule.tokens[i]!.kind !== 'minute'),
  );
  const w = worst ?? { end: now + 1000, limit: 0, used: 0, what: 'requests', budget: false };
  const wait = w.end - now;
  // A budget resets in hours or days: SDKs would otherwise retry it within seconds.
  if (w.budget) ctx.res.setHeader('x-should-retry', 'false');
  return new KeyRateLimitError(
    `Rate limit reached for ${w.what} on key "${rule.name}": Limit ${w.limit}, Used ${w.used}. Please try again in ${resetText(wait)}.`,
    { retryAfter: Math.max(1, Math.ceil(wait / 1000)), phase: 'admission' },
  );
}

/**
 * OpenAI's headers: the request window when requests are limited; tokens per minute when set, else
 * the token window with the least left. Set on the response, so every later head carries them.
 */
function setHeaders(
  ctx: RequestContext,
  rule: KeyRule,
  requests: CounterWindow | undefined,
  tokens: readonly CounterWindow[],
  count: LimitCount,
  now: number,
): void {
  const out: OutgoingHttpHeaders = {};
  if (requests !== undefined) {
    out['x-ratelimit-limit-requests'] = String(requests.limit);
    out['x-ratelimit-remaining-requests'] = String(Math.max(0, requests.limit - count.requests));
    out['x-ratelimit-reset-requests'] = resetText(requests.end - now);
  }
  let pick = -1;
  for (let i = 0; i < tokens.length; i++) {
    if (rule.tokens[i]!.kind === 'minute') {
      pick = i;
      break;
    }
    const left = tokens[i]!.limit - (count.tokens[i] ?? 0);
    if (pick < 0 || left < tokens[pick]!.limit - (count.tokens[pick] ?? 0)) pick = i;
  }
  if (pick >= 0) {
    const w = tokens[pick]!;
    out['x-ratelimit-limit-tokens'] = String(w.limit);
    out['x-ratelimit-remaining-tokens'] = String(Math.max(0, w.limit - (count.tokens[pick] ?? 0)));
    out['x-ratelimit-reset-tokens'] = resetText(w.end - now);
  }
  for (const [k, v] of Object.entries(out)) ctx.res.setHeader(k, v!);
}

function rulesOf(keys: readonly LimitedKey[]): Map<string, KeyRule> {
  const rules = new Map<string, KeyRule>();
  for (const k of keys) {
    if (k.key === '' || k.limits === undefined) continue;
    const rule = ruleOf(k.name, k.limits);
    if (rule !== undefined) rules.set(k.name, rule);
  }
  return rules;
}
