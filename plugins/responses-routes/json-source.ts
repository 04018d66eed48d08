/**
 * JSON text to scan without parsing it, as a string or as UTF-8 bytes (its structure is ASCII, so
 * indexes agree for what the scans look at). Classes, not object literals of closures: a scan
 * allocates one small object.
 */

export interface JsonSource {
  readonly length: number;
  /** The code unit (string) or byte at `i`. */
  at(i: number): number;
  slice(from: number, to: number): string;
  lastIndexOf(needle: string, from: number): number;
}

export class TextSource implements JsonSource {
  readonly length: number;
  constructor(private readonly text: string) {
    this.length = text.length;
  }
  at(i: number): number {
    return this.text.charCodeAt(i);
  }
  slice(from: number, to: number): string {
    return this.text.slice(from, to);
  }
  lastIndexOf(needle: string, from: number): number {
    return this.text.lastIndexOf(needle, from);
  }
}

/** Needles as bytes, made once each (the scans search for a few fixed member names). */
const needles = new Map<string, Buffer>();

export class BytesSource implements JsonSource {
  readonly length: number;
  constructor(private readonly bytes: Buffer) {
    this.length = bytes.length;
  }
  at(i: number): number {
    return this.bytes[i]!;
  }
  slice(from: number, to: number): string {
    return this.bytes.toString('utf8', from, to);
  }
  lastIndexOf(needle: string, from: number): number {
    let bytes = needles.get(needle);
    if (bytes === undefined) needles.set(needle, (bytes = Buffer.from(needle)));
    return this.bytes.lastIndexOf(bytes, from);
  }
}
