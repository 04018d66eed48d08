/**
 * A log line for something that can happen on every request or connection (a dropped connection, a
 * resource error): written at most once per interval, with how many times it happened since the last
 * line and the latest detail, so a flood of them cannot flood the log.
 */
export class Occasional<T> {
  private last = -Infinity;
  private count = 0;

  constructor(
    private readonly everyMs: number,
    private readonly write: (count: number, latest: T) => void,
  ) {}

  hit(latest: T, now = Date.now()): void {
    this.count++;
    if (now - this.last < this.everyMs) return;
    this.last = now;
    const count = this.count;
    this.count = 0;
    this.write(count, latest);
  }
}
