/**
 * The one line per request. It is on every request's path, so it is written by hand rather than
 * through pino: the same JSON shape as pino's lines (level, time, name, the fields, msg), built as one
 * string with no intermediate objects. Values that come from outside (the path, the model, error
 * messages and codes) are scrubbed for secrets; the rest are names and numbers the core chose.
 */
import { pino } from 'pino';
import type { RequestContext } from '../kernel/context.js';
import type { Secrets } from './secrets.js';
import { MAX_ECHO_CHARS, truncate } from './truncate.js';
import type { Outcome } from '../kernel/types.js';

/** Bounds of the outside values in an access line: a path or a model name, and a message. */
const MAX_FIELD_CHARS = MAX_ECHO_CHARS;
const MAX_MESSAGE_CHARS = 1024;

export interface LineSink {
  write(line: string): unknown;
}

export class AccessLog {
  private threshold: number;
  private lastMs = -1;
  private lastIso = '';

  constructor(
    level: string,
    private readonly sink: LineSink,
    private readonly secrets: Secrets | undefined,
  ) {
    this.threshold = thresholdOf(level);
  }

  /** `log.level` changed by a config reload. */
  setLevel(level: string): void {
    this.threshold = thresholdOf(level);
  }

  request(ctx: RequestContext, outcome: Outcome): void {
    if (ctx.skipAccessLog) return;
    const error = outcome.error;
    const level = error === undefined ? 30 : 40;
    if (level < this.threshold) return;
    let line =
      `{"level":${level},"time":"${this.isoNow()}","name":"tapgate","reqId":${this.text(ctx.id)}` +
      `,"method":${JSON.stringify(ctx.method)},"path":${this.text(ctx.pathname)}`;
    if (ctx.route !== undefined) line += `,"route":${JSON.stringify(ctx.route.kind)}`;
    // A turn on a WebSocket: its line reads like a POST's, and says how it came.
    if (ctx.transport !== 'http') line += `,"transport":"${ctx.transport}"`;
    line +=
      `,"status":${outcome.status},"outcome":"${outcome.kind}"` +
      `,"ms":${Math.round(outcome.durationMs * 10) / 10}`;
    if (ctx.clientName !== undefined) line += `,"client":${JSON.stringify(ctx.clientName)}`;
    if (ctx.model !== undefined) line += `,"model":${this.text(ctx.model)}`;
    if (ctx.upstream !== undefined) line += `,"upstream":${JSON.stringify(ctx.upstream.name)}`;
    if (ctx.attempts > 1) line += `,"attempts":${ctx.attempts}`;
    if (ctx.firstByteAt !== undefined)
      line += `,"ttfbMs":${Math.round((ctx.firstByteAt - ctx.startedAt) * 10) / 10}`;
    if (error !== undefined) {
      line +=
        `,"error":{"code":${JSON.stringify(error.code)}` +
        `,"errorCode":${error.errorCode === null ? 'null' : this.text(error.errorCode)}` +
        `,"message":${this.text(error.message, MAX_MESSAGE_CHARS)}`;
      // An internal error is a gateway bug: keep where it came from.
      if (error.status >= 500 && error.cause instanceof Error && error.cause.stack !== undefined)
        line += `,"cause":${this.text(error.cause.stack.split('\n').slice(0, 4).join(' | '), MAX_MESSAGE_CHARS)}`;
      line += '},"msg":"request failed"}\n';
    } else {
      line += ',"msg":"request"}\n';
    }
    this.sink.write(line);
  }

  /** A JSON string of outside text, with any secret in it masked, cut to `max` characters. */
  private text(value: string, max = MAX_FIELD_CHARS): string {
    return JSON.stringify(this.secrets === undefined ? truncate(value, max) : this.secrets.clip(value, max));
  }

  /** The ISO time, formatted once per millisecond however many lines share it. */
  private isoNow(): string {
    const now = Date.now();
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastIso = new Date(now).toISOString();
    }
    return this.lastIso;
  }
}

/** pino's level numbers: an access line is `info` (30), or `warn` (40) for a failed request. */
function thresholdOf(level: string): number {
  return level === 'silent' ? Infinity : (pino.levels.values[level] ?? pino.levels.values.info!);
}
