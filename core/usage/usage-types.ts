/**
 * Usage records: one per request, written off the request path, read by `tapgate usage`, the
 * dashboard and plugins (`PluginContext.usage`). The shapes here are the contract; the store is
 * `core/usage/`.
 */
import type { OutcomeKind } from '../kernel/types.js';

/** One finished request. */
export interface UsageRecord {
  /** Date.now() when the request arrived (ms). */
  at: number;
  /** The client key's name; null on a gateway without keys. */
  key: string | null;
  /** The upstream (account) that answered: the last attempt's; null when none was tried. */
  account: string | null;
  model: string | null;
  /** The route's kind (`responses`, `responses.compact`…); null when no route matched. */
  route: string | null;
  status: number;
  outcome: OutcomeKind;
  /** The client-visible error code of a failed request. */
  errorCode: string | null;
  attempts: number;
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
  total: number;
  durationMs: number;
  /** Time to the first body byte; null when nothing was sent. */
  ttfbMs: number | null;
  requestId: string;
}

export type UsageGroup = 'key' | 'account' | 'model' | 'day';

export interface UsageQuery {
  /** Date.now()-style bounds (ms): `since` inclusive, `until` exclusive (default: now). */
  since: number;
  until?: number;
  /** Rows per distinct combination of these (none: one total row). `day` is the UTC date. */
  by: readonly UsageGroup[];
}

/** Totals of one group. A group's own fields are set for the `by` it was asked for. */
export interface UsageRow {
  key?: string | null;
  account?: string | null;
  model?: string | null;
  /** `YYYY-MM-DD` (UTC). */
  day?: string;
  requests: number;
  /** Requests whose outcome was not `ok` (client aborts included). */
  errors: number;
  input: number;
  cachedInput: number;
  output: number;
  reasoning: number;
  total: number;
}

/** Reads the records of every process that writes the same store. */
export interface UsageReader {
  query(q: UsageQuery): Promise<UsageRow[]>;
}
