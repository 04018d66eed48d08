/**
 * Loads config.yaml: YAML with positions → `${VAR}` substitution → strict schema. Every error names
 * the key path and the line, e.g. `config.yaml:12:5 upstreams[0].baseUrl: Invalid URL`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node as YamlNode,
} from 'yaml';
import { configSchema, type GatewayConfig } from './config-schema.js';

export interface ConfigIssue {
  path: (string | number)[];
  line: number | undefined;
  column: number | undefined;
  message: string;
}

/** The issue list of a failed zod (or zod-compatible) parse. */
export interface SchemaError {
  issues: readonly { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[];
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  readonly file: string;
  constructor(file: string, issues: ConfigIssue[]) {
    super(`${file}: invalid configuration\n` + issues.map((i) => '  - ' + formatIssue(file, i)).join('\n'));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

export function formatPath(path: readonly (string | number | symbol)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += (out ? '.' : '') + String(part);
  }
  return out || '(root)';
}

/** `file:line:col key.path: message`: how boot and reload report a config problem. */
export function formatIssue(file: string, issue: ConfigIssue): string {
  const where = issue.line !== undefined ? `${file}:${issue.line}:${issue.column ?? 1}` : file;
  return `${where} ${formatPath(issue.path)}: ${issue.message}`;
}

/** A parsed YAML document that can still tell where each key stands. */
export class ConfigSource {
  constructor(
    readonly file: string,
    readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Line and column of the node at `path`, or of the nearest ancestor that exists. */
  locate(path: readonly (string | number | symbol)[], keyName?: string): { line?: number; column?: number } {
    let node: unknown = this.doc.contents;
    for (const part of path) {
      const next = childOf(node, part);
      if (next === undefined) break;
      node = next;
    }
    if (keyName !== undefined && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === keyName);
      if (pair && isScalar(pair.key)) node = pair.key;
    }
    const range = (node as YamlNode | undefined)?.range;
    if (!range) return {};
    const pos = this.lines.linePos(range[0]);
    return { line: pos.line, column: pos.col };
  }

  /** Line and column of a character offset in the file. */
  positionOf(offset: number): { line: number; column: number } {
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }

  /** Turns schema issues into located config issues; `prefix` is where `value` sits in the file. */
  issuesFrom(error: SchemaError, prefix: (string | number)[] = []): ConfigIssue[] {
    const out: ConfigIssue[] = [];
    for (const issue of error.issues) {
      const path = [...prefix, ...(issue.path as (string | number)[])];
      if (issue.code === 'unrecognized_keys' && issue.keys !== undefined) {
        for (const key of issue.keys) {
          out.push({
            path: [...path, key],
            ...this.locate(path, key),
            message: 'unknown key',
          } as ConfigIssue);
        }
        continue;
      }
      out.push({ path, ...this.locate(path), message: issue.message } as ConfigIssue);
    }
    return out;
  }

  error(issues: ConfigIssue[]): ConfigError {
    return new ConfigError(this.file, issues);
  }
}

function childOf(node: unknown, part: string | number | symbol): unknown {
  if (isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === part);
    return pair?.value ?? undefined;
  }
  if (isSeq(node) && typeof part === 'number') return node.items[part];
  return undefined;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` in every string scalar; a missing variable is an issue at its line. */
function substituteEnv(source: ConfigSource, env: NodeJS.ProcessEnv): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
      node.value = node.value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        issues.push({
          path,
          ...source.locate(path),
          message: `environment variable ${name} is not set`,
        } as ConfigIssue);
        return '';
      });
    }
  };
  walk(source.doc.contents, []);
  return issues;
}

export interface LoadedConfig {
  config: GatewayConfig;
  source: ConfigSource;
}

/** Parses and validates config text. Throws ConfigError listing every problem found. */
export function parseConfig(
  text: string,
  file = 'config.yaml',
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const source = new ConfigSource(file, doc, lines);
  if (doc.errors.length > 0) {
    throw source.error(
      doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return {
          path: [],
          line: pos.line,
          column: pos.col,
          message: `YAML syntax: ${e.message.split('\n')[0]}`,
        };
      }),
    );
  }
  // Keep going after a missing variable so one run reports every problem in the file.
  const envIssues = substituteEnv(source, env);
  const raw = expandAliases(source);
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw source.error([
      { path: [], line: 1, column: 1, message: 'the top level must be a mapping of keys' },
    ]);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success || envIssues.length > 0) {
    const envPaths = new Set(envIssues.map((i) => formatPath(i.path)));
    const schemaIssues = parsed.success
      ? []
      : source.issuesFrom(parsed.error).filter((i) => !envPaths.has(formatPath(i.path)));
    throw source.error([...envIssues, ...schemaIssues]);
  }
  return { config: parsed.data, source };
}

/** A config file is text of a few KB; this bound stops a device or a huge file from being read whole. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** YAML aliases expanded at most this many times: a "billion laughs" document fails instead of exploding. */
const MAX_ALIAS_COUNT = 1000;

/** The document as plain data, its aliases expanded within a bound; a bomb is an error at its first alias. */
function expandAliases(source: ConfigSource): unknown {
  try {
    return source.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (err) {
    let at: { line?: number; column?: number } = {};
    visit(source.doc, {
      Alias(_key, node) {
        if (node.range) at = source.positionOf(node.range[0]);
        return visit.BREAK;
      },
    });
    throw source.error([
      {
        path: [],
        line: at.line,
        column: at.column,
        message: `YAML aliases expand too far (${(err as Error).message.split('\n')[0]}); write the values out instead`,
      },
    ]);
  }
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const bytes = readConfigBytes(path);
  const bad = firstInvalidUtf8(bytes);
  const text = bytes.toString('utf8');
  if (bad >= 0) {
    // Located like any other problem: the key whose value holds the byte, and its line.
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
    const offset = bytes.subarray(0, bad).toString('utf8').length;
    const pos = lines.linePos(offset);
    throw new ConfigError(path, [
      {
        path: pathAt(doc, offset),
        line: pos.line,
        column: pos.col,
        message: `the file is not valid UTF-8 here (byte 0x${bytes[bad]!.toString(16).toUpperCase().padStart(2, '0')}): save it as UTF-8`,
      },
    ]);
  }
  return parseConfig(text, path, env);
}

/**
 * The file's bytes: a regular file of at most MAX_CONFIG_BYTES. Opened without blocking, so a FIFO
 * (which would wait for a writer forever) or a device such as /dev/zero is refused, not read.
 */
function readConfigBytes(path: string): Buffer {
  const fail = (message: string): never => {
    throw new ConfigError(path, [{ path: [], line: undefined, column: undefined, message }]);
  };
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return fail(`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return fail(`cannot read the file: it is ${fileKind(st)}, not a regular file`);
    const buf = Buffer.allocUnsafe(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      let read: number;
      try {
        read = readSync(fd, buf, n, buf.length - n, null);
      } catch (err) {
        return fail(`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
      if (read === 0) break;
      n += read;
      if (n > MAX_CONFIG_BYTES)
        return fail(`the file is larger than ${MAX_CONFIG_BYTES / 1024} KB: is it the right file?`);
    }
    return Buffer.from(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The offset of the first byte that breaks UTF-8, or -1 when the whole buffer is valid. */
export function firstInvalidUtf8(b: Buffer): number {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Lead byte: how many continuation bytes, and the smallest valid second byte range (no overlongs,
    // no surrogates, nothing above U+10FFFF).
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    // A broken sequence is reported at its lead byte: that is the character the user typed.
    if (i + need >= n) return i;
    const second = b[i + 1]!;
    if (second < lo || second > hi) return i;
    for (let k = 2; k <= need; k++) {
      const cont = b[i + k]!;
      if (cont < 0x80 || cont > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** The key path of the deepest node whose source range holds `offset` (a character offset). */
function pathAt(doc: Document, offset: number): (string | number)[] {
  let best: (string | number)[] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    const range = (node as YamlNode | undefined)?.range;
    if (range !== undefined && range !== null && (offset < range[0] || offset > range[2])) return;
    if (range !== undefined && range !== null) best = path;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, i]));
  };
  walk(doc.contents, []);
  return best;
}
