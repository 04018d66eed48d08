/**
 * Incremental Server-Sent Events framing. It splits a byte stream into frames at blank lines,
 * whatever the chunking (CR, LF and CRLF line ends), keeps each frame's original text so an
 * untouched event is forwarded as received, and parses the fields only once per frame.
 */
import { StringDecoder } from 'node:string_decoder';
import type { SseEvent } from '../kernel/types.js';

export class SseFrameTooLargeError extends Error {}

/** Receives complete frames from SseFramer. */
export interface FrameSink {
  frame(raw: string): void;
}

export class SseFramer {
  private readonly decoder = new StringDecoder('utf8');
  /** The incomplete frame's text, in the pieces it came in: joined once, when the frame completes. */
  private pieces: string[] = [];
  private pendingChars = 0;
  /** The scan's state at the end of the text seen so far, so each chunk's text is scanned once. */
  /** The current line has no character yet (true at a frame's start). */
  private lineEmpty = true;
  /** The text seen so far ends in a CR: an LF first in the next chunk is the rest of a CRLF. */
  private afterCR = false;
  /** The frame is complete but ended in a CR at the end of a chunk: it waits for a possible LF. */
  private ended = false;

  constructor(private readonly maxFrameChars: number) {}

  /** Nothing is waiting for more bytes. */
  get idle(): boolean {
    return this.pendingChars === 0;
  }

  /** Feeds one chunk; hands the text of each complete frame (blank line included) to `sink.frame`. */
  push(chunk: Buffer, sink: FrameSink): void {
    const text = this.decoder.write(chunk);
    if (text.length === 0) return;
    // `start`: where the open frame's text begins in this chunk; `from`: where the scan resumes.
    let start = 0;
    let from = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (text.charCodeAt(0) === 10) from = 1;
      if (this.ended) {
        this.ended = false;
        this.emit(text, 0, from, sink);
        start = from;
      }
    }
    start =
      text.indexOf('\r', from) === -1
        ? this.scanLf(text, start, from, sink)
        : this.scanAny(text, start, from, sink);
    if (start === text.length) return;
    this.pendingChars += text.length - start;
    if (this.pendingChars > this.maxFrameChars)
      throw new SseFrameTooLargeError(`SSE event over ${this.maxFrameChars} characters`);
    this.pieces.push(start === 0 ? text : text.slice(start));
  }

  /**
   * Whatever is left when the stream ends: a frame without its closing blank line. A frame that was
   * complete but for a possible LF (its blank line ended in a CR at the very end) goes to `sink`.
   */
  rest(sink: FrameSink): string {
    if (this.ended) this.emit('', 0, 0, sink);
    const rest = this.pieces.join('') + this.decoder.end();
    this.pieces = [];
    this.pendingChars = 0;
    this.lineEmpty = true;
    this.afterCR = this.ended = false;
    return rest;
  }

  /** LF-only text: native searches for the blank lines. Returns where the open frame starts. */
  private scanLf(text: string, start: number, from: number, sink: FrameSink): number {
    const n = text.length;
    while (from < n) {
      let end: number;
      // A blank line right where the scan resumes (the line before it ended in the previous chunk).
      if (this.lineEmpty && text.charCodeAt(from) === 10) end = from + 1;
      else {
        const i = text.indexOf('\n\n', from);
        if (i < 0) {
          this.lineEmpty = text.charCodeAt(n - 1) === 10;
          break;
        }
        end = i + 2;
      }
      this.emit(text, start, end, sink);
      start = from = end;
      this.lineEmpty = true;
    }
    return start;
  }

  /** Any mix of CR, LF and CRLF, one character at a time. Returns where the open frame starts. */
  private scanAny(text: string, start: number, from: number, sink: FrameSink): number {
    let lineEmpty = this.lineEmpty;
    const n = text.length;
    for (let i = from; i < n;) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) {
        lineEmpty = false;
        i++;
        continue;
      }
      let next = i + 1;
      if (c === 13) {
        if (next === n) {
          // Half of a CRLF, maybe: the next chunk tells.
          this.afterCR = true;
          this.ended = lineEmpty;
          lineEmpty = true;
          break;
        }
        if (text.charCodeAt(next) === 10) next++;
      }
      if (lineEmpty) {
        this.emit(text, start, next, sink);
        start = next;
      }
      lineEmpty = true;
      i = next;
    }
    this.lineEmpty = lineEmpty;
    return start;
  }

  /** Hands over the frame made of the pieces so far and `text[start, end)`. */
  private emit(text: string, start: number, end: number, sink: FrameSink): void {
    const last = start === 0 && end === text.length ? text : text.slice(start, end);
    const pieces = this.pieces;
    if (pieces.length === 0) return sink.frame(last);
    // One join for the whole frame, however many chunks it came in.
    const raw = pieces.length === 1 ? pieces[0]! + last : (pieces.push(last), pieces.join(''));
    this.pieces = [];
    this.pendingChars = 0;
    sink.frame(raw);
  }
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
