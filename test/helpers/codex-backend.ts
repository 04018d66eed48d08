/**
 * A loopback Codex backend (`…/backend-api/codex/responses` and `/responses/compact`): it checks the
 * bearer token against the token server, then answers like chatgpt.com does, `response.metadata`
 * event included. Tests may replace the answer per request.
 */
import type http from 'node:http';
import {
  frame,
  happyStream,
  startUpstream,
  writeSseHead,
  type RecordedRequest,
  type TestUpstream,
} from './upstream.js';

export const CODEX_BASE_PATH = '/backend-api/codex';

export type CodexAnswer = (rec: RecordedRequest, res: http.ServerResponse) => void;

export interface CodexBackend extends TestUpstream {
  /** `baseUrl` for the upstream's config. */
  baseUrl: string;
  /** Replaces the answer to authorised requests (undefined: the normal stream). */
  answer: CodexAnswer | undefined;
  /** Holds every answer (401s included) until the returned function is called. */
  hold(): () => void;
}

/** The happy stream with a `response.metadata` event after `response.created`, as the Codex backend sends. */
export function codexStream(id = 'resp_codex'): string[] {
  const frames = happyStream(id);
  const meta = frame('response.metadata', 1, { metadata: { model_context_window: 272000 } });
  // Renumber what follows so sequence numbers stay strictly increasing.
  const rest = frames
    .slice(1)
    .map((f) =>
      f.replace(/"sequence_number":(\d+)/, (_m, n: string) => `"sequence_number":${Number(n) + 1}`),
    );
  return [frames[0]!, meta, ...rest];
}

export async function startCodexBackend(accepts: (access: string) => boolean): Promise<CodexBackend> {
  const state: { answer: CodexAnswer | undefined } = { answer: undefined };
  let gate: Promise<void> | undefined;
  const up = await startUpstream(async (_req, res, rec) => {
    if (gate !== undefined) await gate;
    const auth = rec.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!accepts(token)) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: 'Provided authentication token is expired.',
            type: 'invalid_request_error',
            param: null,
            code: 'token_expired',
          },
        }),
      );
      return;
    }
    if (state.answer !== undefined) return state.answer(rec, res);
    if (rec.url.startsWith(`${CODEX_BASE_PATH}/responses/compact`)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'cmp_1',
          object: 'response.compaction',
          created_at: 1_700_000_000,
          output: [{ type: 'compaction', encrypted_content: 'enc-abc' }],
          usage: { input_tokens: 5, output_tokens: 1, total_tokens: 6 },
        }),
      );
      return;
    }
    writeSseHead(res, { 'x-codex-primary-used-percent': '12' });
    res.end(codexStream().join(''));
  });
  const backend = up as CodexBackend;
  backend.baseUrl = up.url + CODEX_BASE_PATH;
  Object.defineProperty(backend, 'answer', {
    get: () => state.answer,
    set: (a: CodexAnswer | undefined) => (state.answer = a),
  });
  backend.hold = () => {
    let release!: () => void;
    gate = new Promise<void>((r) => (release = r));
    return () => {
      gate = undefined;
      release();
    };
  };
  return backend;
}
