/**
 * Loads config.yaml: YAML with positions → `${VAR}` substitution → strict schema. Every error names
 * the key path and the line, e.g. `config.yaml:12:5 upstreams[0].baseUrl: Invalid URL`.
 */
import { readFileSync } from 'node:fs';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
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

function formatIssue(file: string, issue: ConfigIssue): string {
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
  const raw = doc.toJS() ?? {};
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

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [
      {
        path: [],
        line: undefined,
        column: undefined,
        message: `cannot read the file (${code ?? String(err)})`,
      },
    ]);
  }
  return parseConfig(text, path, env);
}
