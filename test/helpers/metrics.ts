/** Scrapes a gateway's Prometheus exposition and parses it (strictly), so tests assert on series, not on text. */
import { parsePrometheusText, type PromFamily, type PromSample } from './prometheus-text.js';
import { recordOutput } from './secret-scan.js';

export class Exposition {
  readonly families: Map<string, PromFamily>;
  constructor(readonly text: string) {
    this.families = parsePrometheusText(text);
  }

  family(name: string): PromFamily | undefined {
    return this.families.get(name);
  }

  /**
   * The samples of family `name` whose labels include `labels`: a counter's or gauge's own; for a
   * histogram its `_count` samples (how many were observed).
   */
  samples(name: string, labels: Record<string, string> = {}): PromSample[] {
    const f = this.family(name);
    if (f === undefined) return [];
    const own =
      f.type === 'histogram'
        ? `${name}_count`
        : f.type === 'counter' && !name.endsWith('_total')
          ? `${name}_total`
          : name;
    return f.samples.filter(
      (s) => s.name === own && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }

  /** The sum of the matching samples' values. */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples(name, labels).reduce((n, s) => n + s.value, 0);
  }
}

/** GET `url` (with `token` as a Bearer token when given), checked and parsed. */
export async function scrape(url: string, token?: string): Promise<Exposition> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  recordOutput('metrics', text);
  if (res.status !== 200) throw new Error(`scrape ${url}: ${res.status} ${text}`);
  if (!/^text\/plain; version=0\.0\.4/.test(res.headers.get('content-type') ?? ''))
    throw new Error(`scrape ${url}: content-type ${res.headers.get('content-type')}`);
  return new Exposition(text);
}
