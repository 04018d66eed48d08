/**
 * The usage section put together: the database, the recorder the `finish` tap feeds, the reader
 * plugins get as `PluginContext.usage`, and retention. Built at boot only when `usage.enabled`.
 */
import type { UsageConfig } from '../config/config-schema.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import type { Logger } from '../observe/logger.js';
import { openForWriting, type Db } from './usage-db.js';
import { SqliteUsageReader } from './usage-reader.js';
import { UsageRecorder } from './usage-recorder.js';
import { UsageRetention } from './usage-retention.js';
import type { UsageReader } from './usage-types.js';
import { UsageWriter } from './usage-writer.js';

/** After every other finish tap (FALLBACK is 10000): a record reads what they left on the context. */
export const USAGE_STAGE = Number.MAX_SAFE_INTEGER;

export class UsageStore {
  readonly reader: UsageReader;
  readonly recorder: UsageRecorder;
  private readonly retention: UsageRetention;
  private closed = false;

  private constructor(
    private readonly db: Db,
    config: UsageConfig,
    logger: Logger,
  ) {
    const writer = new UsageWriter(db);
    this.reader = new SqliteUsageReader(db);
    this.recorder = new UsageRecorder(writer, { flushIntervalMs: config.flushInterval, logger });
    this.retention = new UsageRetention(writer, config.retention, logger);
  }

  /** Opens (or creates) the database at `file`; rejects with a UsageDbError naming it. */
  static async open(file: string, config: UsageConfig, logger: Logger): Promise<UsageStore> {
    const store = new UsageStore(await openForWriting(file), config, logger);
    void store.retention.run();
    return store;
  }

  /** Records every request at `finish`. */
  tap(hooks: GatewayHooks): void {
    hooks.finish.tap({ name: 'tapgate:usage', stage: USAGE_STAGE }, this.recorder.record);
  }

  /** Writes what is left and closes the file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.retention.stop();
    this.recorder.close();
    this.db.close();
  }
}
