/**
 * Deletes records past `usage.retention`, and daily totals past the longer rollup retention: once
 * soon after boot, then hourly. One bounded chunk per turn of the event loop, so a large backlog
 * (a retention just shortened) never holds requests or the write lock for long.
 */
import type { Logger } from '../observe/logger.js';
import { Occasional } from '../observe/occasional.js';
import { utcDay, type UsageWriter } from './usage-writer.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Daily totals outlive the records: a year-over-year view still has them. */
export const MIN_ROLLUP_RETENTION_MS = 400 * DAY_MS;

export class UsageRetention {
  private readonly timer: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  private readonly failed: Occasional<unknown>;

  constructor(
    private readonly writer: Pick<UsageWriter, 'pruneRecordsBefore' | 'pruneDailyBefore'>,
    private readonly retentionMs: number,
    logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.failed = new Occasional(HOUR_MS, (count, err) =>
      logger.warn({ err, failures: count }, 'usage retention: deleting old records failed; retried later'),
    );
    this.timer = setInterval(() => this.run(), HOUR_MS);
    this.timer.unref();
  }

  /** Starts a pass unless one is running; resolves when it is done (or stopped). */
  run(): Promise<void> {
    if (this.running || this.stopped) return Promise.resolve();
    this.running = true;
    const now = this.now();
    const recordsBefore = now - this.retentionMs;
    const dailyBefore = utcDay(now - Math.max(this.retentionMs, MIN_ROLLUP_RETENTION_MS));
    return new Promise((done) => {
      const step = () => {
        if (this.stopped) return finish();
        try {
          const n = this.writer.pruneRecordsBefore(recordsBefore) + this.writer.pruneDailyBefore(dailyBefore);
          if (n === 0) return finish();
        } catch (err) {
          this.failed.hit(err);
          return finish();
        }
        setImmediate(step);
      };
      const finish = () => {
        this.running = false;
        done();
      };
      setImmediate(step);
    });
  }

  /** No pass starts after this; one running ends at its next chunk. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
