/**
 * Label values that come from outside (model names, upstream error codes) keep a series set bounded:
 * the values known at boot, then the first `cap` others seen, then `other`. A value is admitted once
 * (the check and the secret scrub run on its first sight only), so a request pays one Map lookup.
 */
import type { Secrets } from '../observe/secrets.js';

/** What a label value may look like: short, and nothing a Prometheus client has to escape. */
const SAFE = /^[A-Za-z0-9._:/@+-]{1,64}$/;

export const OTHER = 'other';
export const NONE = 'none';

export class BoundedLabel {
  private readonly admitted = new Map<string, string>();
  private extra = 0;

  constructor(
    private readonly cap: number,
    private readonly secrets: Secrets,
    known: Iterable<string> = [],
  ) {
    for (const value of known) if (this.acceptable(value)) this.admitted.set(value, value);
  }

  /** Values that belong to the config (an upstream or model added by a reload): admitted beyond the cap. */
  know(values: Iterable<string>): void {
    for (const value of values)
      if (!this.admitted.has(value) && this.acceptable(value)) this.admitted.set(value, value);
  }

  /** The label for `value`: itself once admitted, `none` when absent, else `other`. */
  of(value: string | null | undefined): string {
    if (value === undefined || value === null || value === '') return NONE;
    const hit = this.admitted.get(value);
    if (hit !== undefined) return hit;
    if (this.extra >= this.cap || !this.acceptable(value)) return OTHER;
    this.extra++;
    this.admitted.set(value, value);
    return value;
  }

  /** Safe characters, and no secret: a client may name a "model" after a key. */
  private acceptable(value: string): boolean {
    return SAFE.test(value) && value !== OTHER && value !== NONE && this.secrets.scrub(value) === value;
  }
}
