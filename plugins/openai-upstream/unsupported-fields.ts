/**
 * Top-level body fields Codex sends that only the ChatGPT backend takes: an API-key upstream rejects
 * them (`400 unsupported_parameter`), so they are left out of what it is sent. `access_programs`
 * (`{"cyber": "standard" | …}`) is sent by newer Codex CLIs once a cyber access program is chosen.
 */
import type { OutgoingRequest } from '../../core/index.js';

const CHATGPT_ONLY = ['access_programs'];

/**
 * The body without those fields, or undefined when it has none (the original bytes then go as
 * sent, never re-serialised). `parsed` is the request's parsed body, used while the outgoing body is
 * still the raw bytes. The parsed body is copied, never changed: failover may replay it elsewhere.
 */
export function withoutChatgptOnlyFields(
  body: OutgoingRequest['body'],
  parsed: Readonly<Record<string, unknown>> | undefined,
): Record<string, unknown> | undefined {
  const source = Buffer.isBuffer(body) ? parsed : body;
  if (source === undefined || !CHATGPT_ONLY.some((f) => Object.hasOwn(source, f))) return undefined;
  const out = { ...source };
  for (const f of CHATGPT_ONLY) delete out[f];
  return out;
}
