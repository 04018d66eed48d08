/**
 * Named stages for tap ordering (lower runs first). Core defaults always sit at FALLBACK,
 * so any plugin tap at DEFAULT wins over them.
 */
export const Stage = {
  /** Security checks that must see every request first (client auth). */
  GUARD: -2000,
  EARLY: -1000,
  DEFAULT: 0,
  LATE: 1000,
  FALLBACK: 10000,
} as const;
export type StageName = keyof typeof Stage;
