/**
 * The README's configuration tables are checked against the schema (issue 12): every key the schema
 * accepts has a row in its section's table, every row names a key the schema accepts, and each row's
 * default is the schema's default. A key added without a row, a renamed key or a changed default
 * fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configSchema, upstreamBaseSchema } from '../../core/config/config-schema.js';
import { parseDuration, parseSize } from '../../core/config/units.js';
import { openaiUpstreamSchema } from '../../plugins/openai-upstream/index.js';

interface Field {
  /** `timeouts.connect`: nested objects are flattened with dots, as the tables write them. */
  key: string;
  /** The default, or undefined when the key has none (required, or optional with no default). */
  default: unknown;
  hasDefault: boolean;
}

/** A zod schema's own definition, whatever wraps it (zod 4 keeps it on `_zod.def`). */
interface Def {
  type: string;
  innerType?: Schema;
  defaultValue?: unknown;
  shape?: Record<string, Schema>;
  in?: Schema;
}
type Schema = { _zod: { def: Def } };

/** The object under defaults, prefaults, optionals and pipes, or undefined for a leaf. */
function objectShape(schema: Schema): Record<string, Schema> | undefined {
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

/** `whole`: object keys documented as one row (an upstream's `timeouts` overrides proxy.timeouts). */
function fields(shape: Record<string, Schema>, whole: readonly string[] = [], prefix = ''): Field[] {
  const out: Field[] = [];
  for (const [name, schema] of Object.entries(shape)) {
    const key = prefix + name;
    const nested = objectShape(schema);
    if (nested !== undefined && !whole.includes(key)) out.push(...fields(nested, whole, key + '.'));
    else {
      const d = defaultOf(schema);
      out.push({ key, default: d.value, hasDefault: d.hasDefault });
    }
  }
  return out;
}

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows (key → default cell) of the first table after `heading`. */
function table(heading: string): Map<string, string> {
  const at = README.indexOf(heading);
  assert.ok(at >= 0, `README has no "${heading}"`);
  const rows = new Map<string, string>();
  let seen = false;
  for (const line of README.slice(at + heading.length).split('\n')) {
    if (!line.startsWith('|')) {
      if (seen) break;
      continue;
    }
    seen = true;
    const cells = line.split('|').map((c) => c.trim());
    const key = /^`([^`]+)`$/.exec(cells[1] ?? '')?.[1];
    if (key !== undefined) rows.set(key, cells[3] ?? '');
  }
  return rows;
}

/** A README default cell as a value: `30s` → 30000, `16mb` → 16777216, `true`, `[]`, text. */
function cellValue(cell: string): unknown {
  const text = cell.replace(/`/g, '');
  const number = parseDuration(text) ?? parseSize(text);
  if (number !== undefined) return number;
  if (text === 'true' || text === 'false') return text === 'true';
  if (text.startsWith('[') || text.startsWith('{')) return JSON.parse(text);
  return text;
}

function check(heading: string, shape: Record<string, Schema>, whole: readonly string[] = []): void {
  const rows = table(heading);
  const keys = fields(shape, whole);
  const missing = keys.filter((f) => !rows.has(f.key)).map((f) => f.key);
  assert.deepEqual(missing, [], `keys without a row under ${heading}`);
  const known = new Set(keys.map((f) => f.key));
  const stale = [...rows.keys()].filter((k) => !known.has(k));
  assert.deepEqual(stale, [], `rows under ${heading} that name no key`);
  for (const f of keys) {
    if (!f.hasDefault) continue;
    assert.deepEqual(cellValue(rows.get(f.key)!), f.default, `${heading} ${f.key}: README default`);
  }
}

const sections = objectShape(configSchema as unknown as Schema)!;

describe('config docs: the README tables match the schema', () => {
  for (const name of ['server', 'auth', 'proxy', 'pool', 'log']) {
    it(`${name}: every key has a row, every row a key, and the defaults agree`, () =>
      check(`### \`${name}\``, objectShape(sections[name]!)!));
  }

  it('upstreams[]: the keys every upstream has', () =>
    check('Keys every upstream has:', objectShape(upstreamBaseSchema as unknown as Schema)!, ['timeouts']));

  it('upstreams[] of type openai', () =>
    check('Keys of type `openai`', objectShape(openaiUpstreamSchema as unknown as Schema)!));

  it('the check reads defaults: a wrong one would fail', () => {
    assert.equal(cellValue('`30s`'), 30_000);
    assert.equal(cellValue('`16mb`'), 16 * 1024 * 1024);
    assert.deepEqual(cellValue('`[]`'), []);
    assert.notDeepEqual(cellValue('`5m`'), 60_000);
  });
});
