/**
 * The default for `server.maxConnections`, from the process's file-descriptor limit. Each client
 * connection may need an upstream socket too, so half of what is left after a reserve (the process's
 * own files, listeners, logs) goes to client connections.
 */
import { readFileSync } from 'node:fs';

/** The limit assumed where it cannot be read (not Linux, no /proc). */
export const FALLBACK_FD_LIMIT = 1024;
/** Descriptors kept for everything that is not a connection. */
const RESERVE = 64;
const MIN_CONNECTIONS = 64;

/** max(64, floor((limit − 64) / 2)). */
export function defaultMaxConnections(fdLimit: number): number {
  return Math.max(MIN_CONNECTIONS, Math.floor((fdLimit - RESERVE) / 2));
}

/** The soft "Max open files" of this process (Linux /proc/self/limits), else FALLBACK_FD_LIMIT. */
export function fdSoftLimit(limitsFile = '/proc/self/limits'): number {
  try {
    return parseFdLimit(readFileSync(limitsFile, 'utf8')) ?? FALLBACK_FD_LIMIT;
  } catch {
    return FALLBACK_FD_LIMIT;
  }
}

/** The soft limit in the text of /proc/<pid>/limits, or undefined ("unlimited" or unreadable). */
export function parseFdLimit(text: string): number | undefined {
  const m = /^Max open files\s+(\d+)\s/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}
