/**
 * The README's configuration tables, generated from the schema: each key's row (type, default,
 * meaning) is carried by the schema itself (`.meta()` on the field), so the tables cannot drift from
 * the code. `npm run docs:config` prints them; test/core/config-docs.test.ts checks the README against
 * them. A key added to the schema without its meta fails that test.
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema, keyLimitsSchema, upstreamBaseSchema } from '../core/config/config-schema.js';

/** A zod schema's own definition, whatever wraps it (zod 4 keeps it on `_zod.def`). */
interface Def {
  type: string;
  innerType?: Schema;
  defaultValue?: unknown;
  shape?: Record<string, Schema>;
  in?: Schema;
}
export type Schema = { _zod: { def: Def } };

export interface FieldDoc {
  /** `timeouts.connect`: nested objects are flattened with dots, as the tables write them. */
  key: string;
  /** The schema's default, when the key has one. */
  hasDefault: boolean;
  default: unknown;
  /** What the row says: from the field's `.meta({ description, docType, docDefault })`. */
  type: string | undefined;
  defaultText: string | undefined;
  meaning: string | undefined;
}

/** The object under defaults, prefaults, optionals and pipes, or undefined for a leaf. */
export function objectShape(schema: Schema): Record<string, Schema> | undefined {
  let s: Schema | undefined = schema;
  while (s !== undefined) {
    const def: Def = s._zod.def;
    if (def.type === 'object') return def.shape;
    s = def.innerType ?? def.in;
  }
  return undefined;
}

function defaultOf(schema: Schema): { hasDefault: boolean; value: unknown } {
  let s: Schema | undefined = schema;
  while (s !== undefined) {
    const def: Def = s._zod.def;
    if (def.type === 'default') return { hasDefault: true, value: def.defaultValue };
    if (def.type !== 'optional' && def.type !== 'pipe') break;
    s = def.innerType ?? def.in;
  }
  return { hasDefault: false, value: undefined };
}

/** The rows of one object schema; `whole`: object keys documented as one row (an upstream's `timeouts`). */
export function fieldDocs(
  shape: Record<string, Schema>,
  whole: readonly string[] = [],
  prefix = '',
): FieldDoc[] {
  const out: FieldDoc[] = [];
  for (const [name, schema] of Object.entries(shape)) {
    const key = prefix + name;
    const nested = objectShape(schema);
    if (nested !== undefined && !whole.includes(key)) {
      out.push(...fieldDocs(nested, whole, key + '.'));
      continue;
    }
    const d = defaultOf(schema);
    const meta = z.globalRegistry.get(schema as unknown as z.ZodType) as
      { description?: string; docType?: string; docDefault?: string } | undefined;
    out.push({
      key,
      hasDefault: d.hasDefault,
      default: d.value,
      type: meta?.docType,
      defaultText: meta?.docDefault,
      meaning: meta?.description,
    });
  }
  return out;
}

/** The documented tables: README heading → rows. */
export function configTables(): { heading: string; rows: FieldDoc[] }[] {
  const sections = objectShape(configSchema as unknown as Schema)!;
  return [
    ...['server', 'auth', 'proxy', 'pool', 'state', 'usage', 'metrics', 'log'].map((name) => ({
      heading: `### \`${name}\``,
      rows: fieldDocs(objectShape(sections[name]!)!),
    })),
    {
      heading: 'Keys of `auth.keys[].limits`:',
      rows: fieldDocs(objectShape(keyLimitsSchema as unknown as Schema)!),
    },
    {
      heading: 'Keys every upstream has:',
      rows: fieldDocs(objectShape(upstreamBaseSchema as unknown as Schema)!, ['timeouts']),
    },
  ];
}

/** One table in the README's markdown (prettier aligns it). */
export function markdownTable(rows: readonly FieldDoc[]): string {
  const lines = ['| Key | Type | Default | Meaning |', '| --- | --- | --- | --- |'];
  for (const r of rows)
    lines.push(`| \`${r.key}\` | ${r.type ?? ''} | ${r.defaultText ?? ''} | ${r.meaning ?? ''} |`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const t of configTables()) process.stdout.write(`${t.heading}\n\n${markdownTable(t.rows)}\n\n`);
}
