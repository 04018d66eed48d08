/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests. Written here because
 * parse-prometheus-text-format 1.1.1 folds every labelled histogram of a family into one sample.
 * Strict: a line that is no HELP, TYPE, comment or well-formed sample throws, as does a sample of no
 * declared family or a repeated series.
 */

export interface PromSample {
  /** The sample's own name (`x_bucket`, `x_sum`, `x_count` for histograms). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  help: string;
  type: string;
  samples: PromSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created'];

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const seen = new Set<string>();
  for (const [i, line] of text.split('\n').entries()) {
    const fail = (why: string) => {
      throw new Error(`exposition line ${i + 1}: ${why}: ${line}`);
    };
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta !== null) {
      const family = families.get(meta[2]!) ?? { name: meta[2]!, help: '', type: 'untyped', samples: [] };
      families.set(family.name, family);
      if (meta[1] === 'HELP') family.help = meta[3]!;
      else if (!/^(counter|gauge|histogram|summary|untyped)$/.test(meta[3]!)) fail('unknown type');
      else family.type = meta[3]!;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (m === null) return fail('not a sample');
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const start = LABEL.lastIndex;
      const l = LABEL.exec(body);
      if (l === null || LABEL.lastIndex === start) return fail('bad labels');
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = parseValue(m[3]!);
    if (value === undefined) return fail('bad value');
    const name = m[1]!;
    const family =
      families.get(name) ??
      families.get(
        SUFFIXES.map((s) => (name.endsWith(s) ? name.slice(0, -s.length) : '')).find((n) =>
          families.has(n),
        ) ?? '',
      );
    if (family === undefined) return fail('sample of no declared family');
    const id = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(id)) fail('repeated series');
    seen.add(id);
    family.samples.push({ name, labels, value });
  }
  return families;
}

/** A sample value as Prometheus reads it (Go's ParseFloat: `NaN`, `+Inf`, `-Inf` in any case; prom-client writes `Nan`). */
function parseValue(text: string): number | undefined {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}
