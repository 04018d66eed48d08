/**
 * Bounds the cost of JSON.parse before it runs. JSON.parse is linear in bytes only for flat text: on
 * deep nesting or millions of tiny values it blocks the event loop for seconds and allocates hundreds
 * of MB (issue 11). One scan over the bytes, skipping string contents, measures nesting depth and the
 * number of values first; parsing is refused above the limits.
 */

/** What the scan found: `ok`, or the first limit crossed, or a body that is no JSON object. */
export type JsonShape = 'ok' | 'not-object' | 'too-deep' | 'too-many-values';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
/** A string this long is searched natively (memchr) instead of byte by byte. */
const LONG_STRING = 64;

/**
 * Scans `body` once. Depth counts open containers (the top-level object is level 1). Values are the
 * top-level object, every array element and every object member: a comma starts one, and so does the
 * first one of each non-empty container, counted when it closes. The counts are exact on the valid
 * prefix of the body, which is all JSON.parse reads before it fails (unclosed containers aside, at
 * most `maxDepth` values), so it never nests deeper or builds much more than the limits allow.
 * Anything else is left to JSON.parse to judge.
 */
export function scanJson(body: Buffer, maxDepth: number, maxValues: number): JsonShape {
  const n = body.length;
  let i = 0;
  while (i < n && isSpace(body[i]!)) i++;
  if (i === n) return 'ok';
  const first = body[i]!;
  // A JSON value that is not an object is refused unparsed; garbage is left to JSON.parse's message.
  if (first !== OPEN_BRACE) return startsJsonValue(first) ? 'not-object' : 'ok';
  let depth = 0;
  let values = 1;
  for (; i < n; i++) {
    const c = body[i]!;
    if (c === QUOTE) {
      i = stringEnd(body, i + 1);
      if (i < 0) return 'ok';
    } else if (c === COMMA) {
      if (++values > maxValues) return 'too-many-values';
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'too-deep';
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      let j = i - 1;
      while (isSpace(body[j]!)) j--;
      const before = body[j];
      if (before !== OPEN_BRACE && before !== OPEN_BRACKET && ++values > maxValues) return 'too-many-values';
    }
  }
  return 'ok';
}

/** The index of the quote that closes the string whose contents start at `from`; -1 if none. */
function stringEnd(body: Buffer, from: number): number {
  const n = body.length;
  const short = Math.min(n, from + LONG_STRING);
  let i = from;
  for (; i < short; i++) {
    const c = body[i]!;
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  // Long text (an image, a file): find each quote natively; one after an odd run of backslashes is escaped.
  for (;;) {
    const q = body.indexOf(QUOTE, i);
    if (q < 0) return -1;
    let b = q - 1;
    while (b >= i && body[b] === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    i = q + 1;
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** `[`, `"`, `-`, a digit, or the `t`/`f`/`n` of true/false/null. */
function startsJsonValue(c: number): boolean {
  return (
    c === OPEN_BRACKET ||
    c === QUOTE ||
    c === 0x2d ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x74 ||
    c === 0x66 ||
    c === 0x6e
  );
}
