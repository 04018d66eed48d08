/** Durations and sizes as users write them in config.yaml: `30s`, `500ms`, `5m`; `10mb`, `512kb`. */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i;
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
/** Node runs a timer longer than this (2^31 − 1 ms, about 24.8 days) after 1 ms instead. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value : undefined;
  const m = DURATION.exec(value.trim());
  return m ? Math.round(Number(m[1]) * DURATION_MS[m[2] ?? 'ms']!) : undefined;
}

/** A duration for a message, in the largest unit that divides it: `1h`, `90s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value : undefined;
  const m = SIZE.exec(value.trim());
  return m ? Math.round(Number(m[1]) * SIZE_BYTES[(m[2] ?? 'b').toLowerCase()]!) : undefined;
}

/** A duration in ms: a number of ms or a string such as `30s`. */
export const duration = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration such as 500ms, 30s or 5m, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    if (ms > MAX_DURATION_MS) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(v)} is longer than the longest timer Node can run (${MAX_DURATION_MS} ms, about 24 days); use a shorter duration, or 0 where 0 turns the limit off`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** A size in bytes: a number of bytes or a string such as `10mb`. */
export const size = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size such as 512kb or 10mb, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return bytes;
  });

/** An integer that may arrive as a string after `${VAR}` substitution. */
export const integer = (min: number, max: number) =>
  z
    .union([z.number(), z.string().regex(/^\d+$/, 'expected a whole number').transform(Number)])
    .pipe(z.number().int().min(min).max(max));

/**
 * A value sent in an HTTP header (a key, a token, an organization id): printable ASCII with no space.
 * Anything else cannot be sent (Node throws ERR_INVALID_CHAR on every request) or never matches what a
 * client sends, so it fails at boot, naming the character and where it is.
 */
export const headerToken = () =>
  z.string().superRefine((v, ctx) => {
    const bad = unsafeHeaderChar(v, false);
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: bad });
  });

/** Like headerToken, but spaces are allowed (a User-Agent). */
export const headerText = () =>
  z.string().superRefine((v, ctx) => {
    const bad = unsafeHeaderChar(v, true);
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: bad });
  });

/** Why `value` cannot go in a header, or undefined. Never quotes the value: it may be a secret. */
export function unsafeHeaderChar(value: string, spaces: boolean): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c > 0x20 && c < 0x7f) || (spaces && c === 0x20)) continue;
    const code = 'U+' + c.toString(16).toUpperCase().padStart(4, '0');
    const hint =
      c === 0xfffd
        ? ' (a byte that is not UTF-8 was read here: save the file as UTF-8)'
        : c <= 0x20 || c === 0x7f
          ? ' (a space or control character: check for stray quotes or line breaks)'
          : '';
    return `contains ${code} at position ${i + 1}, which cannot be sent in an HTTP header: use printable ASCII${spaces ? '' : ' without spaces'}${hint}`;
  }
  return undefined;
}

const PERIOD = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const PERIOD_MS: Record<string, number> = { ...DURATION_MS, d: 86_400_000 };

/** A span of calendar time (`90d`, `36h`), never run as a timer: days allowed, no timer cap, unit required. */
export function parsePeriod(value: string | number): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value : undefined;
  const m = PERIOD.exec(value.trim());
  return m ? Math.round(Number(m[1]) * PERIOD_MS[m[2]!]!) : undefined;
}

/** A period in ms: a number of ms or a string such as `90d`. */
export const period = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parsePeriod(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a period such as 36h or 90d, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return ms;
  });
