/**
 * The suite-wide secret scan: helpers record what the gateway said (log lines, response bodies,
 * dashboard messages, a spawned gateway's stdout and stderr) and the secrets tests configured;
 * a root hook (test/setup/secret-scan.ts) checks, after the whole suite, that no secret was said.
 */

export interface RecordedOutput {
  /** What it was: `log`, `response`, `dashboard`, `stdout`, `stderr`… */
  kind: string;
  /** The test that was running, for the failure message. */
  test: string;
  text: string;
}

const secrets = new Set<string>();
const outputs: RecordedOutput[] = [];
/** Outputs read at the end of the suite (a log capture keeps growing until then). */
const lazy: { kind: string; test: string; read: () => string }[] = [];
let currentTest = '(outside a test)';

/** Secrets shorter than this are too likely to occur by chance (e.g. a test's `k1`). */
const MIN_SECRET_LENGTH = 8;

/** A value the gateway must never say: a client key, an upstream key, a token. */
export function registerSecret(...values: (string | undefined)[]): void {
  for (const v of values) if (v !== undefined && v.length >= MIN_SECRET_LENGTH) secrets.add(v);
}

/** Field names that hold a secret in config, auth files and token answers. */
const SECRET_FIELD = /(^|_)(key|apikey|token|access_token|refresh_token|secret|password)$/i;

/** Registers every secret-looking string field of a parsed config or credential document. */
export function registerSecretsIn(doc: unknown): void {
  if (Array.isArray(doc)) for (const v of doc) registerSecretsIn(v);
  else if (typeof doc === 'object' && doc !== null)
    for (const [k, v] of Object.entries(doc)) {
      if (typeof v === 'string' && SECRET_FIELD.test(k) && !/^id_token$/i.test(k)) registerSecret(v);
      else registerSecretsIn(v);
    }
}

/** Something the gateway said. Lazy: a log capture is read once, at the end of the suite. */
export function recordOutput(kind: string, text: string | (() => string)): void {
  const test = currentTest;
  if (typeof text === 'string') outputs.push({ kind, test, text });
  else lazy.push({ kind, test, read: text });
}

export function setCurrentTest(title: string): void {
  currentTest = title;
}

export interface Leak {
  secret: string;
  kind: string;
  test: string;
  excerpt: string;
}

/** Every (secret, output) pair where the output contains the secret. */
export function findLeaks(): {
  leaks: Leak[];
  scannedOutputs: number;
  scannedBytes: number;
  secrets: number;
} {
  for (const l of lazy.splice(0)) outputs.push({ kind: l.kind, test: l.test, text: l.read() });
  const leaks: Leak[] = [];
  let bytes = 0;
  for (const out of outputs) {
    bytes += out.text.length;
    for (const secret of secrets) {
      const at = out.text.indexOf(secret);
      if (at === -1) continue;
      leaks.push({
        secret: `${secret.slice(0, 6)}…(${secret.length} chars)`,
        kind: out.kind,
        test: out.test,
        excerpt: out.text.slice(Math.max(0, at - 80), at).replaceAll(secret, '<SECRET>') + '<SECRET>',
      });
    }
  }
  return { leaks, scannedOutputs: outputs.length, scannedBytes: bytes, secrets: secrets.size };
}

/**
 * A `fetch` for the openai SDK that records every response body as the SDK reads it (a pass-through
 * transform, so a cancel by the SDK still reaches the connection), so SDK-driven tests feed the scan.
 */
export const recordingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  if (res.body === null) return res;
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  recordOutput('response', () => chunks.join(''));
  const recorder = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      chunks.push(decoder.decode(chunk, { stream: true }));
      controller.enqueue(chunk);
    },
  });
  return new Response(res.body.pipeThrough(recorder), {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
};
