/**
 * Log lines for people (`log.format: pretty`, or `auto` on a terminal): each JSON line, pino's and the
 * access log's alike, turned into `12:00:01.234 INFO  message key=value …` just before it is written.
 * It sits after the JSON is built, so secret scrubbing and line clamping have already happened, and
 * JSON mode pays nothing for it; a person reading a terminal does not mind one JSON.parse per line.
 */

/** Where the readable lines go (stdout's line batcher). */
export interface LineOut {
  write(line: string): unknown;
  flush?(cb?: (err?: Error) => void): void;
  flushSync?(): void;
}

const LEVELS: Record<number, [name: string, color: string]> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '34'],
  30: ['INFO ', '32'],
  40: ['WARN ', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '35'],
};
/** Fields every line has, or that the line's head already shows. */
const HEAD_FIELDS = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname']);
/** Access-line fields shown in its head (`POST /v1/responses 200 ok 812ms`). */
const ACCESS_HEAD = new Set(['method', 'path', 'status', 'outcome', 'ms']);

const paint = (color: boolean, code: string, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);

/** One JSON log line as a readable one (a multi-line stack indented below); not JSON: returned as is. */
export function prettyLine(line: string, color: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof rec !== 'object' || rec === null) return line;
  const [level, levelColor] = LEVELS[rec.level as number] ?? [String(rec.level).padEnd(5), '0'];
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : '';
  let head = `${paint(color, '2', time)} ${paint(color, levelColor, level)} `;
  const isAccess = rec.msg === 'request' || rec.msg === 'request failed';
  if (isAccess) {
    head += `${String(rec.method)} ${String(rec.path)} ${paint(color, '1', String(rec.status))} ${String(rec.outcome)} ${String(rec.ms)}ms`;
  } else {
    head += paint(color, '1', String(rec.msg ?? ''));
  }
  const tail: string[] = [];
  let stack: string | undefined;
  for (const [key, value] of Object.entries(rec)) {
    if (HEAD_FIELDS.has(key) || (isAccess && ACCESS_HEAD.has(key))) continue;
    if (key === 'err' && typeof value === 'object' && value !== null) {
      const err = value as { message?: unknown; stack?: unknown };
      tail.push(`${paint(color, '2', 'err=')}${showValue(err.message)}`);
      if (typeof err.stack === 'string') stack = err.stack;
      continue;
    }
    // One level of a plain object is spread out (`error.code=… error.message="…"`).
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [sub, v] of Object.entries(value))
        tail.push(`${paint(color, '2', `${key}.${sub}=`)}${showValue(v)}`);
      continue;
    }
    tail.push(`${paint(color, '2', key + '=')}${showValue(value)}`);
  }
  let out = tail.length === 0 ? head : `${head} ${tail.join(' ')}`;
  if (stack !== undefined) out += '\n    ' + stack.split('\n').join('\n    ');
  return out + '\n';
}

/** A bare word stays bare; text with spaces or quotes is quoted; objects and lists as compact JSON. */
function showValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && /^[^\s,"]+$/.test(v)))
    return `[${value.join(',')}]`;
  return JSON.stringify(value) ?? String(value);
}

/** A destination that writes each line through `prettyLine` to `out`. */
export class PrettyLines {
  constructor(
    private readonly out: LineOut,
    private readonly color: boolean,
  ) {}

  write(line: string): boolean {
    // pino and the access log write one whole line per call.
    this.out.write(prettyLine(line, this.color));
    return true;
  }

  flush(cb?: (err?: Error) => void): void {
    if (this.out.flush !== undefined) this.out.flush(cb);
    else cb?.();
  }

  flushSync(): void {
    this.out.flushSync?.();
  }
}
