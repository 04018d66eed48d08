/**
 * One string member of a JSON object text, read without parsing the whole text: a scan from the
 * start that skips strings and tracks nesting, and stops at the first member named `key` in an
 * object at the given depth. A Response's `model` comes before its `output`, so a JSON answer of
 * megabytes is read only up to there. Works on a string or on UTF-8 bytes (the structure is ASCII).
 */

import { BytesSource, TextSource, type JsonSource } from './json-source.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
/** A member value longer than this is no name. */
const MAX_VALUE_CHARS = 256;

type Source = JsonSource;

/** In a string: `depth` 1 is the top-level object, 2 an object member of it, and so on. */
export function stringMemberInText(text: string, key: string, depth: number): string | undefined {
  return stringMember(new TextSource(text), key, depth);
}

/** In UTF-8 bytes. */
export function stringMemberInBytes(bytes: Buffer, key: string, depth: number): string | undefined {
  return stringMember(new BytesSource(bytes), key, depth);
}

function stringMember(src: Source, key: string, depth: number): string | undefined {
  const quotedKey = JSON.stringify(key);
  /** Per open container: true for an object, false for an array. */
  const open: boolean[] = [];
  const end = src.length;
  for (let i = 0; i < end; i++) {
    const c = src.at(i);
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) open.push(c === OPEN_OBJECT);
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (open.pop() === undefined) return undefined;
    } else if (c === QUOTE) {
      const close = stringEnd(src, i);
      if (close < 0) return undefined;
      if (open.length === depth && open[depth - 1] === true) {
        const colon = skipSpace(src, close + 1);
        // A key, and the one asked for: its value is the answer, if it is a string.
        if (colon < end && src.at(colon) === COLON && src.slice(i, close + 1) === quotedKey)
          return stringValueAt(src, skipSpace(src, colon + 1));
      }
      i = close;
    }
  }
  return undefined;
}

/** The index of the quote that closes the string opened at `open`; -1 when it is cut. */
function stringEnd(src: Source, open: number): number {
  for (let i = open + 1; i < src.length; i++) {
    const c = src.at(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i;
  }
  return -1;
}

function stringValueAt(src: Source, i: number): string | undefined {
  if (i >= src.length || src.at(i) !== QUOTE) return undefined;
  const close = stringEnd(src, i);
  if (close < 0 || close - i > MAX_VALUE_CHARS) return undefined;
  try {
    const value: unknown = JSON.parse(src.slice(i, close + 1));
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

function skipSpace(src: Source, i: number): number {
  while (i < src.length) {
    const c = src.at(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}
