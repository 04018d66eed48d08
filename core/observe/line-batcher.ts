/**
 * Log lines go out in batches of about 4 KB (one write, not one per line), and at least every 250 ms
 * so `tail -f` stays live. The batch is joined once, as a flat string: handing sonic-boom one line
 * at a time makes it re-measure its growing buffer on every write.
 */
import { pino } from 'pino';

const BATCH_CHARS = 4096;
const FLUSH_EVERY_MS = 250;

type SonicBoom = ReturnType<typeof pino.destination>;

export class LineBatcher {
  private lines: string[] = [];
  private chars = 0;
  private readonly out: SonicBoom;

  constructor(fd = 1) {
    this.out = pino.destination({ dest: fd, sync: false });
    setInterval(() => this.flush(), FLUSH_EVERY_MS).unref();
    // Lines still batched when the process exits are written synchronously.
    process.once('exit', () => this.flushSync());
  }

  write(line: string): boolean {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= BATCH_CHARS) this.drain();
    return true;
  }

  /** Writes what is batched now (pino calls this from `logger.flush()`). */
  flush(cb?: (err?: Error) => void): void {
    this.drain();
    if (cb === undefined) this.out.flush();
    else this.out.flush(cb);
  }

  flushSync(): void {
    this.drain();
    try {
      this.out.flushSync();
    } catch {
      // Nothing was pending, or the descriptor is gone: nothing more can be written.
    }
  }

  private drain(): void {
    if (this.lines.length === 0) return;
    const batch = this.lines.length === 1 ? this.lines[0]! : this.lines.join('');
    this.lines = [];
    this.chars = 0;
    this.out.write(batch);
  }
}
