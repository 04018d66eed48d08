/**
 * Errors as data (issue 12): every error class in core/kernel/errors.ts has a row in README.md's
 * error-taxonomy table whose status, `type` and `error.code` agree with the class, belongs to a
 * group, and gets from the core's classify() the verdict README's "Failover" table gives it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { classify } from '../../core/defaults/classify.js';
import * as errors from '../../core/kernel/errors.js';
import {
  ERROR_GROUPS,
  GatewayError,
  UpstreamHttpError,
  UpstreamStreamError,
  type ErrorPhase,
} from '../../core/kernel/errors.js';
import type { Classification } from '../../core/kernel/types.js';

const README = resolve(dirname(fileURLToPath(import.meta.url)), '../../README.md');
const T = 30_000;

interface Row {
  cls: string;
  status: string;
  type: string;
  code: string;
}

/** The rows of the table under "### Error taxonomy", by its header names. */
function taxonomyRows(): Row[] {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('### Error taxonomy'));
  const lines = section.split('\n');
  const head = lines.findIndex((l) => l.startsWith('| Class'));
  assert.ok(head > 0, 'README: no table under "### Error taxonomy"');
  const cells = (line: string): string[] =>
    line
      .slice(1, line.lastIndexOf('|'))
      .split('|')
      .map((c) => c.trim());
  const names = cells(lines[head]!);
  const col = (name: string): number => {
    const i = names.findIndex((n) => n.includes(name));
    assert.ok(i >= 0, `README: the taxonomy table has no "${name}" column`);
    return i;
  };
  const [c, s, t, e] = [col('Class'), col('Status'), col('`type`'), col('`error.code`')];
  const rows: Row[] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const r = cells(line);
    rows.push({ cls: unquote(r[c]!), status: r[s]!, type: r[t]!, code: r[e]! });
  }
  return rows;
}

function unquote(cell: string): string {
  return cell.replace(/^`(.*)`$/, '$1');
}

type ErrorClass = abstract new (...args: never[]) => GatewayError;

/** Every concrete error class the module exports (groups and the base are never thrown). */
const CLASSES: ErrorClass[] = (Object.values(errors) as unknown[]).filter(
  (v): v is ErrorClass =>
    typeof v === 'function' &&
    v.prototype instanceof GatewayError &&
    !ERROR_GROUPS.includes(v as typeof GatewayError),
);

/** One instance of a class, for those whose constructor needs more than a message. */
function sample(cls: ErrorClass): GatewayError {
  if (cls === UpstreamHttpError)
    return new UpstreamHttpError(500, {}, Buffer.alloc(0), 'boom', 'server_error', null);
  if (cls === UpstreamStreamError) return new UpstreamStreamError('boom', 'server_error', 'server_error');
  return new (cls as unknown as new () => GatewayError)();
}

const NONE: Classification = { retry: 'none' };
const SOFT: Classification = {
  retry: 'switch',
  cooldownMs: T,
  cooldownScope: 'model',
  cooldownKind: 'transient',
};
const SOFT_ACCOUNT: Classification = { ...SOFT, cooldownScope: 'account' };
const hard = (ms: number, scope: 'model' | 'account' = 'model'): Classification => ({
  retry: 'switch',
  cooldownMs: ms,
  cooldownScope: scope,
  cooldownKind: 'rate_limit',
});

/** README "Failover": the core's verdict for each class (UpstreamHttpError / UpstreamStreamError below). */
const VERDICT: Record<string, Classification> = {
  InvalidRequestError: NONE,
  AuthenticationError: NONE,
  PermissionDeniedError: NONE,
  NotFoundError: NONE,
  BodyTooLargeError: NONE,
  UnsupportedMediaTypeError: NONE,
  ClientAbortError: NONE,
  ClientStalledError: NONE,
  AuthThrottledError: NONE,
  KeyRateLimitError: NONE,
  ModelNotAllowedError: NONE,
  NoUpstreamError: NONE,
  AllUpstreamsCoolingError: NONE,
  QueueFullError: NONE,
  // "connection refused, DNS failure, connect timeout, reset before the response"
  UpstreamConnectionRefusedError: SOFT_ACCOUNT,
  UpstreamDnsError: SOFT_ACCOUNT,
  UpstreamConnectTimeoutError: SOFT_ACCOUNT,
  UpstreamResetError: SOFT_ACCOUNT,
  // "EOF, connection lost, idle timeout, malformed event; first-byte timeout"
  UpstreamFirstByteTimeoutError: SOFT,
  UpstreamIdleTimeoutError: SOFT,
  UpstreamConnectionLostError: SOFT,
  UpstreamIncompleteStreamError: SOFT,
  UpstreamMalformedError: SOFT,
  UpstreamTooLargeError: NONE,
  RequestTotalTimeoutError: NONE,
  InternalError: NONE,
  GatewayResourceError: NONE,
  ShuttingDownError: NONE,
  // HTTP 500: "HTTP 408/5xx"
  UpstreamHttpError: SOFT,
  // A stream failure that is neither overload nor a rate limit: "anything else"
  UpstreamStreamError: NONE,
};

describe('error taxonomy and classify()', () => {
  const rows = taxonomyRows();

  it('README has one taxonomy row per error class, and no row without a class', () => {
    const names = CLASSES.map((c) => c.name);
    assert.ok(names.length >= 28, `only ${names.length} error classes found`);
    const listed = rows.map((r) => r.cls);
    assert.deepEqual(
      {
        withoutRow: names.filter((n) => !listed.includes(n)),
        withoutClass: listed.filter((n) => !names.includes(n)),
      },
      { withoutRow: [], withoutClass: [] },
    );
  });

  it("each class's status, type and error.code agree with its README row", () => {
    for (const row of rows) {
      const cls = CLASSES.find((c) => c.name === row.cls);
      if (cls === undefined) continue;
      const e = sample(cls);
      // "upstream's", "from the event": a value the class takes from what the upstream sent.
      if (/^\d+$/.test(row.status)) assert.equal(String(e.status), row.status, `${row.cls} status`);
      if (/^`.*`$/.test(row.type)) assert.equal(e.type, unquote(row.type), `${row.cls} type`);
      if (/^`.*`$/.test(row.code)) assert.equal(e.errorCode, unquote(row.code), `${row.cls} error.code`);
    }
  });

  it('every class belongs to one group (so the classification table covers it), UpstreamHttpError aside', () => {
    for (const cls of CLASSES) {
      if (cls === UpstreamHttpError) continue;
      const groups = ERROR_GROUPS.filter((g) => cls.prototype instanceof g).map((g) => g.name);
      assert.equal(groups.length, 1, `${cls.name}: groups ${groups.join(', ') || 'none'}`);
    }
  });

  it('classify() gives every class the verdict of README "Failover"', () => {
    for (const cls of CLASSES) {
      assert.ok(cls.name in VERDICT, `${cls.name}: no expected verdict in this test`);
      assert.deepEqual(classify(sample(cls), T), VERDICT[cls.name], cls.name);
    }
    // The phase a class was raised in does not change its verdict.
    for (const phase of ['connect', 'headers', 'stream'] as ErrorPhase[])
      assert.deepEqual(classify(new errors.UpstreamResetError(undefined, { phase }), T), SOFT_ACCOUNT);
  });

  it('classify() of UpstreamHttpError follows the status rules', () => {
    const http = (
      status: number,
      code: string | null = null,
      headers: Record<string, string> = {},
      body = '',
    ): Classification =>
      classify(new UpstreamHttpError(status, headers, Buffer.from(body), 'x', 'upstream_error', code), T);
    for (const status of [400, 404, 413, 415, 422, 409]) assert.deepEqual(http(status), NONE, `${status}`);
    assert.deepEqual(http(500, 'context_length_exceeded'), NONE);
    assert.deepEqual(http(502, 'previous_response_not_found'), NONE);
    assert.deepEqual(http(429), hard(T));
    assert.deepEqual(http(429, null, { 'retry-after': '7' }), hard(7000));
    assert.deepEqual(http(429, null, { 'retry-after-ms': '250' }), hard(250));
    assert.deepEqual(
      http(429, null, {}, '{"error":{"type":"usage_limit_reached"}}'),
      hard(15 * 60_000, 'account'),
    );
    assert.deepEqual(http(429, null, {}, '{"error":{"resets_in_seconds":12}}'), hard(12_000));
    assert.deepEqual(http(503, 'service_unavailable'), hard(T));
    assert.deepEqual(http(503, 'server_is_overloaded'), SOFT);
    assert.deepEqual(http(503, 'slow_down'), SOFT);
    assert.deepEqual(http(401), SOFT_ACCOUNT);
    assert.deepEqual(http(403), SOFT_ACCOUNT);
    for (const status of [408, 500, 502, 504]) assert.deepEqual(http(status), SOFT, `${status}`);
  });

  it('classify() of UpstreamStreamError: overload is soft, a rate limit hard for its "try again in"', () => {
    const stream = (message: string, type: string, code: string | null): Classification =>
      classify(new UpstreamStreamError(message, type, code), T);
    assert.deepEqual(stream('busy', 'service_unavailable_error', 'server_is_overloaded'), SOFT);
    assert.deepEqual(stream('busy', 'x', 'slow_down'), SOFT);
    assert.deepEqual(
      stream('Please try again in 1.5s.', 'rate_limit_error', 'rate_limit_exceeded'),
      hard(1500),
    );
    assert.deepEqual(stream('try again in 350ms', 'tokens', null), hard(350));
    assert.deepEqual(stream('Rate limit reached', 'requests', null), hard(T));
    assert.deepEqual(stream('too long', 'invalid_request_error', 'context_length_exceeded'), NONE);
  });
});
