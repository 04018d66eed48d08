/**
 * Turns each finished request into a UsageRecord and keeps it in memory: that push is all the
 * request path pays. A timer writes the batch in one transaction every `flushInterval` (sooner when
 * it grows large). A write that fails (disk full, the file busy past its timeout) keeps the batch for
 * the next try, up to a bound past which the oldest records are dropped and counted; either is
 * logged at most once a minute, and nothing throws into the gateway.
 */
import type { RequestContext } from '../kernel/context.js';
import type { Outcome } from '../kernel/types.js';
import type { Logger } from '../observe/logger.js';
import { Occasional } from '../observe/occasional.js';
import type { UsageRecord } from './usage-types.js';

/** A batch this large is written at once rather than at the next tick. */
export const EARLY_FLUSH_RECORDS = 2000;
/** Records kept while writes fail; beyond it the oldest go (about 100 MB at worst). */
export const MAX_PENDING_RECORDS = 200_000;

/** Where batches go: throws when the write failed (nothing of the batch was written). */
export interface BatchSink {
  insert(records: readonly UsageRecord[]): void;
}

export interface RecorderOptions {
  flushIntervalMs: number;
  logger: Logger;
  /** Bounds, for tests. */
  earlyFlush?: number;
  maxPending?: number;
}

export class UsageRecorder {
  private batch: UsageRecord[] = [];
  private readonly timer: NodeJS.Timeout;
  private early: NodeJS.Immediate | undefined;
  private closed = false;
  private dropped = 0;
  private readonly earlyFlush: number;
  private readonly maxPending: number;
  private readonly failed: Occasional<unknown>;
  private readonly droppedLog: Occasional<number>;

  constructor(
    private readonly sink: BatchSink,
    private readonly opts: RecorderOptions,
  ) {
    this.earlyFlush = opts.earlyFlush ?? EARLY_FLUSH_RECORDS;
    this.maxPending = opts.maxPending ?? MAX_PENDING_RECORDS;
    this.failed = new Occasional(60_000, (count, err) =>
      opts.logger.error(
        { err, failures: count, pending: this.batch.length },
        'usage records could not be written; kept for the next try',
      ),
    );
    this.droppedLog = new Occasional(60_000, (_count, dropped) =>
      opts.logger.error(
        { dropped, pending: this.batch.length },
        'usage records dropped: writes keep failing and the backlog is full',
      ),
    );
    this.timer = setInterval(() => this.flush(), opts.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * The `finish` tap: builds the record and queues it. Not recorded: a repeated authentication
   * failure (counted in its address's summary line instead), and a route that authenticates itself
   * (`auth: 'none'`: the dashboard's page and its polls are no API use).
   */
  readonly record = (ctx: RequestContext, outcome: Outcome): void => {
    if (this.closed || ctx.skipAccessLog || ctx.route?.auth === 'none') return;
    const usage = ctx.usage;
    this.batch.push({
      at: ctx.receivedAt,
      key: ctx.clientName ?? null,
      account: ctx.upstream?.name ?? null,
      model: ctx.model ?? null,
      route: ctx.route?.kind ?? null,
      status: outcome.status,
      outcome: outcome.kind,
      errorCode: outcome.error?.errorCode ?? null,
      attempts: ctx.attempts,
      input: usage?.input ?? 0,
      cachedInput: usage?.cachedInput ?? 0,
      output: usage?.output ?? 0,
      reasoning: usage?.reasoning ?? 0,
      total: usage?.total ?? 0,
      durationMs: round1(outcome.durationMs),
      ttfbMs: ctx.firstByteAt === undefined ? null : round1(ctx.firstByteAt - ctx.startedAt),
      requestId: ctx.id,
    });
    if (this.batch.length >= this.earlyFlush && this.early === undefined)
      this.early = setImmediate(() => this.flush());
  };

  /** Records waiting to be written. */
  get pending(): number {
    return this.batch.length;
  }

  /** Writes the batch now; on failure keeps it (bounded). Never throws. */
  flush(): void {
    if (this.early !== undefined) {
      clearImmediate(this.early);
      this.early = undefined;
    }
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    try {
      this.sink.insert(batch);
    } catch (err) {
      // Kept in order, ahead of what arrived since; the oldest go first when over the bound.
      this.batch = batch.length === 0 ? this.batch : batch.concat(this.batch);
      const over = this.batch.length - this.maxPending;
      if (over > 0) {
        this.batch.splice(0, over);
        this.dropped += over;
        this.droppedLog.hit(this.dropped);
      }
      this.failed.hit(err);
    }
  }

  /** Stops the timer and writes what is left (the gateway calls it once requests are done). */
  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
    if (this.batch.length > 0)
      this.opts.logger.error(
        { lost: this.batch.length },
        'usage records lost at shutdown: the last write failed',
      );
    this.batch = [];
  }
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
