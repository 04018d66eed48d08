/**
 * A Response's `usage`, read without parsing the Response: the last `"usage"` member is found by a
 * search from the end (it follows `output` in every Response the API sends), and only its object is
 * parsed. A terminal event or a JSON answer can be megabytes of output; its usage is ~200 bytes.
 */
import type { TokenUsage } from '../../core/index.js';
import { BytesSource, TextSource, type JsonSource } from './json-source.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
/** A usage object is small; anything longer is not one. */
const MAX_USAGE_CHARS = 4096;

/**
 * A `"usage"` member that is no token count (a `metadata` or tool-schema key of that name) is skipped
 * for an earlier one, this many times at most.
 */
const MAX_CANDIDATES = 4;

const USAGE_KEY = '"usage"';

type Source = JsonSource;

/** The usage in an event's data (a JSON object as text), or undefined when it reports none. */
export function usageInText(text: string): TokenUsage | undefined {
  return lastUsage(new TextSource(text));
}

/** The usage in a JSON answer held as chunks (not copied unless the answer came in several). */
export function usageInChunks(chunks: readonly Buffer[]): TokenUsage | undefined {
  return lastUsage(new BytesSource(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[])));
}

function lastUsage(src: Source): TokenUsage | undefined {
  let from = src.length;
  for (let n = 0; n < MAX_CANDIDATES && from > 0; n++) {
    const hit = src.lastIndexOf(USAGE_KEY, from - 1);
    if (hit < 0) return undefined;
    const usage = usageAt(hit + 7, src);
    if (usage !== undefined) return usage;
    from = hit;
  }
  return undefined;
}

/** Reads `: { … }` from `i` (just after the member name): the object's text, parsed and checked. */
function usageAt(i: number, src: Source): TokenUsage | undefined {
  const end = src.length;
  i = skipSpace(i, end, src);
  if (i >= end || src.at(i) !== 0x3a) return undefined; // ':'
  i = skipSpace(i + 1, end, src);
  if (i >= end || src.at(i) !== OPEN) return undefined; // `null`, or not an object
  const close = matchingBrace(i, Math.min(end, i + MAX_USAGE_CHARS), src);
  if (close < 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(src.slice(i, close + 1));
  } catch {
    return undefined;
  }
  return toTokenUsage(parsed);
}

function skipSpace(i: number, end: number, src: Source): number {
  while (i < end) {
    const c = src.at(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** The index of the brace that closes the one at `open`, skipping strings; -1 before `end`. */
function matchingBrace(open: number, end: number, src: Source): number {
  let depth = 0;
  for (let i = open; i < end; i++) {
    const c = src.at(i);
    if (c === QUOTE) {
      for (i++; i < end; i++) {
        const s = src.at(i);
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    } else if (c === OPEN) depth++;
    else if (c === CLOSE && --depth === 0) return i;
  }
  return -1;
}

/** Responses usage → the core's shape. Counts that are missing or not whole numbers read as 0. */
export function toTokenUsage(value: unknown): TokenUsage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const u = value as Record<string, unknown>;
  const input = count(u.input_tokens);
  const output = count(u.output_tokens);
  if (input === undefined && output === undefined) return undefined;
  const inputDetails = u.input_tokens_details as Record<string, unknown> | undefined;
  const outputDetails = u.output_tokens_details as Record<string, unknown> | undefined;
  const total = count(u.total_tokens);
  return {
    input: input ?? 0,
    cachedInput: count(inputDetails?.cached_tokens) ?? 0,
    output: output ?? 0,
    reasoning: count(outputDetails?.reasoning_tokens) ?? 0,
    total: total ?? (input ?? 0) + (output ?? 0),
  };
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}
