/**
 * The README's configuration tables are checked against the schema (issue 12). The schema carries
 * each key's row (type, default, meaning) in its `.meta()`; `npm run docs:config` prints the tables
 * from it (app/config-docs.ts). Here: every key has its meta, every key has a README row and every
 * row a key, each row's cells are the generated ones, and each documented default is the schema's
 * real default. A key added without its docs, a renamed key or a changed default fails.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configTables, fieldDocs, objectShape, type Schema } from '../../app/config-docs.js';
import { parseDuration, parsePeriod, parseSize } from '../../core/config/units.js';
import { openaiUpstreamSchema } from '../../plugins/openai-upstream/index.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows (key → [type, default, meaning] cells) of the first table after `heading`. */
function table(heading: string): Map<string, string[]> {
  const at = README.indexOf(heading);
  assert.ok(at >= 0, `README has no "${heading}"`);
  const rows = new Map<string, string[]>();
  let seen = false;
  for (const line of README.slice(at + heading.length).split('\n')) {
    if (!line.startsWith('|')) {
      if (seen) break;
      continue;
    }
    seen = true;
    const cells = line.split('|').map((c) => c.trim());
    const key = /^`([^`]+)`$/.exec(cells[1] ?? '')?.[1];
    if (key !== undefined) rows.set(key, cells.slice(2, 5));
  }
  return rows;
}

/** A README default cell as a value: `30s` → 30000, `90d` → 7776000000, `16mb` → 16777216, `true`, `[]`, text. */
function cellValue(cell: string): unknown {
  const text = cell.replace(/`/g, '');
  const number = parseDuration(text) ?? parsePeriod(text) ?? parseSize(text);
  if (number !== undefined) return number;
  if (text === 'true' || text === 'false') return text === 'true';
  if (text.startsWith('[') || text.startsWith('{')) return JSON.parse(text);
  return text;
}

describe('config docs: the README tables are the schema’s', () => {
  for (const { heading, rows: docs } of configTables()) {
    it(`${heading}: every key has its docs and a row, every row a key, cells and defaults agree`, () => {
      const undocumented = docs
        .filter((d) => d.meaning === undefined || d.type === undefined)
        .map((d) => d.key);
      assert.deepEqual(undocumented, [], 'keys without .meta({ description, docType, docDefault })');
      const rows = table(heading);
      assert.deepEqual(
        docs.filter((d) => !rows.has(d.key)).map((d) => d.key),
        [],
        `keys without a row under ${heading} (npm run docs:config prints it)`,
      );
      const known = new Set(docs.map((d) => d.key));
      assert.deepEqual(
        [...rows.keys()].filter((k) => !known.has(k)),
        [],
        `rows under ${heading} that name no key`,
      );
      for (const d of docs) {
        assert.deepEqual(rows.get(d.key), [d.type, d.defaultText, d.meaning], `${heading} ${d.key}: the row`);
        if (d.hasDefault)
          assert.deepEqual(cellValue(d.defaultText!), d.default, `${d.key}: documented default`);
      }
    });
  }

  it('upstreams[] of type openai: keys and defaults', () => {
    const rows = table('Keys of type `openai`');
    const docs = fieldDocs(objectShape(openaiUpstreamSchema as unknown as Schema)!);
    assert.deepEqual(
      docs.map((d) => d.key),
      [...rows.keys()],
    );
    for (const d of docs)
      if (d.hasDefault) assert.deepEqual(cellValue(rows.get(d.key)![1]!), d.default, d.key);
  });

  it('the check reads defaults: a wrong one would fail', () => {
    assert.equal(cellValue('`30s`'), 30_000);
    assert.equal(cellValue('`16mb`'), 16 * 1024 * 1024);
    assert.deepEqual(cellValue('`[]`'), []);
    assert.notDeepEqual(cellValue('`5m`'), 60_000);
  });
});
