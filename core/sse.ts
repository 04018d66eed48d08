/**
 * Incremental Server-Sent Events framing. It splits a byte stream into frames at blank lines,
 * whatever the chunking (CR, LF and CRLF line ends), keeps each frame's original text so an
 * untouched event is forwarded as received, and parses the fields only once per frame.
 */
import { StringDecoder } from 'node:string_decoder';
import type { SseEvent } from './types.js';

export class SseFrameTooLargeError extends Error {}

/** Receives complete frames from SseFramer. */
export interface FrameSink {
  frame(raw: string): void;
}

export class SseFramer {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private pendingHasCR = false;
  /**
   * Text after `pending` in which no frame can end: a long event's chunks wait here unjoined, so
   * the pending text is not copied and rescanned on every chunk (quadratic on a multi-MB event).
   */
  private tail: string[] = [];
  private tailChars = 0;

  constructor(private readonly maxFrameChars: number) {}

  /** Nothing is waiting for more bytes. */
  get idle(): boolean {
    return this.pending.length === 0 && this.tailChars === 0;
  }

  /** Feeds one chunk; hands the text of each complete frame (blank line included) to `sink.frame`. */
  push(chunk: Buffer, sink: FrameSink): void {
    const text = this.decoder.write(chunk);
    if (text.length === 0) return;
    if (this.pending.length > 0 && !this.pendingHasCR && !mayEndFrame(this.lastChar(), text)) {
      this.tail.push(text);
      this.tailChars += text.length;
      if (this.pending.length + this.tailChars > this.maxFrameChars)
        throw new SseFrameTooLargeError(`SSE event over ${this.maxFrameChars} characters`);
      return;
    }
    this.joinTail();
    // Resume the search just before the new text: a blank line may straddle the chunk boundary.
    let from = this.pending.length > 2 ? this.pending.length - 2 : 0;
    let s = this.pending.length === 0 ? text : this.pending + text;
    let start = 0;
    const hasCR = this.pendingHasCR || text.indexOf('\r') !== -1;
    for (;;) {
      const end = hasCR ? generalBoundary(s, start) : simpleBoundary(s, from, start);
      if (end < 0) break;
      sink.frame(start === 0 && end === s.length ? s : s.slice(start, end));
      start = end;
      from = end;
    }
    s = start === 0 ? s : s.slice(start);
    if (s.length > this.maxFrameChars)
      throw new SseFrameTooLargeError(`SSE event over ${this.maxFrameChars} characters`);
    this.pending = s;
    this.pendingHasCR = hasCR && s.indexOf('\r') !== -1;
  }

  /** Whatever is left when the stream ends: a frame without its closing blank line. */
  rest(): string {
    this.joinTail();
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    return rest;
  }

  private lastChar(): number {
    const last = this.tailChars > 0 ? this.tail[this.tail.length - 1]! : this.pending;
    return last.charCodeAt(last.length - 1);
  }

  private joinTail(): void {
    if (this.tailChars === 0) return;
    this.pending += this.tail.join('');
    this.tail = [];
    this.tailChars = 0;
  }
}

/** Whether a frame may end in `text`, given the character before it (LF-only pending text). */
function mayEndFrame(before: number, text: string): boolean {
  if (text.indexOf('\r') !== -1) return true;
  if (before === 10 && text.charCodeAt(0) === 10) return true;
  return text.indexOf('\n\n') !== -1;
}

/** LF-only text: the end index of the first frame (after "\n\n"), or -1. */
function simpleBoundary(s: string, from: number, start: number): number {
  // A frame that starts with "\n" is a stray blank line: it ends right there.
  if (s.charCodeAt(start) === 10) return start + 1;
  const i = s.indexOf('\n\n', from > start ? from : start);
  return i < 0 ? -1 : i + 2;
}

/** Any mix of CR, LF and CRLF. A trailing CR waits for the next chunk: it may be half of a CRLF. */
function generalBoundary(s: string, start: number): number {
  let lineStart = start;
  let i = start;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c !== 10 && c !== 13) {
      i++;
      continue;
    }
    let next = i + 1;
    if (c === 13) {
      if (next === n) return -1;
      if (s.charCodeAt(next) === 10) next++;
    }
    if (i === lineStart) return next;
    lineStart = next;
    i = next;
  }
  return -1;
}

/** Parses one frame's fields. Returns undefined for a frame of comments only. */
export function parseFrame(raw: string): SseEvent | undefined {
  return parseCanonical(raw) ?? parseGeneral(raw);
}

/**
 * The shape OpenAI sends, `event: X\ndata: Y\n\n` (LF, one data line), read with three index
 * lookups instead of a character loop. Anything else falls back to the general parser.
 */
function parseCanonical(raw: string): SseEvent | undefined {
  if (!raw.startsWith('event: ')) return undefined;
  const nl = raw.indexOf('\n', 7);
  const end = raw.length - 2;
  if (nl < 0 || !raw.startsWith('data: ', nl + 1) || raw.indexOf('\n', nl + 7) !== end) return undefined;
  if (raw.charCodeAt(end + 1) !== 10 || raw.charCodeAt(nl - 1) === 13 || raw.charCodeAt(end - 1) === 13)
    return undefined;
  return { event: raw.slice(7, nl), data: raw.slice(nl + 7, end), raw };
}

function parseGeneral(raw: string): SseEvent | undefined {
  let event: string | undefined;
  let data: string | undefined;
  let hasField = false;
  let pos = 0;
  const n = raw.length;
  while (pos < n) {
    let end = pos;
    while (end < n) {
      const c = raw.charCodeAt(end);
      if (c === 10 || c === 13) break;
      end++;
    }
    if (end > pos && raw.charCodeAt(pos) !== 58 /* ':' comment */) {
      const colon = raw.indexOf(':', pos);
      let name: string;
      let value: string;
      if (colon < 0 || colon > end) {
        name = raw.slice(pos, end);
        value = '';
      } else {
        name = raw.slice(pos, colon);
        const v = raw.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
        value = v <= end ? raw.slice(v, end) : '';
      }
      if (name === 'data') {
        data = data === undefined ? value : data + '\n' + value;
        hasField = true;
      } else if (name === 'event') {
        event = value;
        hasField = true;
      } else if (name === 'id' || name === 'retry') {
        hasField = true;
      }
    }
    pos = end + (raw.charCodeAt(end) === 13 && raw.charCodeAt(end + 1) === 10 ? 2 : 1);
  }
  if (!hasField) return undefined;
  return { event, data: data ?? '', raw };
}

/** Serialises an event that a tap changed (raw cleared). */
export function serializeEvent(e: SseEvent): string {
  let out = e.event !== undefined ? `event: ${e.event}\n` : '';
  for (const line of e.data.split('\n')) out += `data: ${line}\n`;
  return out + '\n';
}
