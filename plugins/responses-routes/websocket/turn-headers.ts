/**
 * The headers a turn runs with: the handshake's, as an HTTP request of the same client would carry
 * them (the client key included: the core checks it on every turn), without what only the
 * WebSocket handshake means, and with the per-turn values Codex sends in `client_metadata`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { unsafeHeaderChar } from '../../../core/index.js';

/** Headers of the handshake itself, or of a body the turn does not have. */
const HANDSHAKE_ONLY = new Set([
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'accept',
  // Ids name the socket (Codex: its thread); each turn gets its own request id.
  'x-request-id',
]);

/**
 * Codex repeats per turn, in `client_metadata`, what its HTTP requests send as headers (the turn's
 * kind and id, the window, the sub-agent): the handshake has only the first turn's values.
 */
const PER_TURN = [
  'x-codex-turn-metadata',
  'x-codex-window-id',
  'x-codex-installation-id',
  'x-openai-subagent',
  'x-codex-parent-thread-id',
];
const MAX_TURN_HEADER = 8192;

/** Once per socket: the handshake's headers, ready for turns. */
export function turnBaseHeaders(handshake: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in handshake) {
    if (HANDSHAKE_ONLY.has(name)) continue;
    if (name === 'openai-beta') {
      // The WebSocket beta means nothing to an HTTP upstream; other betas go on.
      const rest = withoutWebSocketBeta(handshake[name]);
      if (rest !== undefined) out[name] = rest;
      continue;
    }
    out[name] = handshake[name];
  }
  out['content-type'] = 'application/json';
  out.accept = 'text/event-stream';
  return out;
}

/** The turn's headers: the socket's, with this turn's `client_metadata` values in place. */
export function turnMetadataHeaders(base: IncomingHttpHeaders, metadata: unknown): IncomingHttpHeaders {
  const headers = { ...base };
  if (typeof metadata !== 'object' || metadata === null) return headers;
  const m = metadata as Record<string, unknown>;
  for (const name of PER_TURN) {
    const v = m[name];
    if (typeof v === 'string' && v.length <= MAX_TURN_HEADER && unsafeHeaderChar(v, true) === undefined)
      headers[name] = v;
  }
  return headers;
}

function withoutWebSocketBeta(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const kept = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && !s.startsWith('responses_websockets='));
  return kept.length > 0 ? kept.join(', ') : undefined;
}

/** Whether the handshake asks for a version of the WebSocket transport this front end speaks. */
export function acceptedBeta(value: string | string[] | undefined): boolean {
  if (value === undefined) return true;
  const versions = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('responses_websockets='));
  return versions.length === 0 || versions.some((v) => SPOKEN.has(v.slice('responses_websockets='.length)));
}

const SPOKEN = new Set(['2026-02-06', '2026-02-04']);

/** The `turn_id` in Codex's `x-codex-turn-metadata` JSON, if there is one. */
export function codexTurnId(headers: IncomingHttpHeaders): string | undefined {
  const metadata = headers['x-codex-turn-metadata'];
  if (typeof metadata !== 'string' || !metadata.includes('turn_id')) return undefined;
  try {
    const id = (JSON.parse(metadata) as { turn_id?: unknown }).turn_id;
    return typeof id === 'string' && id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}
