/** Durations and sizes as users write them in config.yaml: `30s`, `500ms`, `5m`; `10mb`, `512kb`. */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i;
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

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
