/**
 * The keys of a `type: codex` upstream, their defaults, and the client identity (originator,
 * version, User-Agent) derived from them in one place.
 */
import { z } from 'zod';
import { duration } from '../../core/index.js';

export const DEFAULT_BASE_URL = 'https://chatgpt.com/backend-api/codex';
export const DEFAULT_TOKEN_URL = 'https://auth.openai.com/oauth/token';
/** Codex CLI's public OAuth client id. */
export const DEFAULT_CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
export const DEFAULT_ORIGINATOR = 'codex_cli_rs';
/** The backend answers 404 to versions older than about 0.144.0. */
export const DEFAULT_VERSION = '0.169.0';

/** Body parameters the Codex backend rejects (or cannot honour with `store: false`). */
export const DEFAULT_REMOVE_PARAMETERS = [
  'max_output_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'frequency_penalty',
  'presence_penalty',
  'user',
  'metadata',
  'safety_identifier',
  'prompt_cache_retention',
  'stream_options',
  'previous_response_id',
];

/** Client headers that may reach the Codex backend (the identity ones are then overridden). */
export const DEFAULT_PASS_HEADERS = [
  'session-id',
  'session_id',
  'thread-id',
  'conversation_id',
  'x-client-request-id',
  'x-codex-turn-state',
  'x-codex-turn-metadata',
  'x-codex-beta-features',
  'x-codex-window-id',
  'version',
  'originator',
];

const HEADER_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const HEADER_VALUE = /^[\x20-\x7e]+$/;

export const codexTokensSchema = z.strictObject({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  id_token: z.string().min(1).optional(),
  account_id: z.string().min(1).optional(),
});

export const codexUpstreamSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).default(DEFAULT_BASE_URL),
  tokenUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).default(DEFAULT_TOKEN_URL),
  /** Path of a Codex CLI auth.json (`~` expands); exactly one of `auth` and `tokens`. */
  auth: z.string().min(1).optional(),
  /** Inline tokens, kept in memory only: refreshed tokens are not written anywhere. */
  tokens: codexTokensSchema.optional(),
  clientId: z.string().min(1).default(DEFAULT_CLIENT_ID),
  originator: z
    .string()
    .regex(HEADER_TOKEN, 'expected a header token such as codex_cli_rs')
    .default(DEFAULT_ORIGINATOR),
  version: z
    .string()
    .regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/, 'expected a version such as 0.169.0')
    .default(DEFAULT_VERSION),
  /** Default: `<originator>/<version> (tapgate)`. If set, it must start with `<originator>/<version>`. */
  userAgent: z.string().regex(HEADER_VALUE, 'expected printable ASCII').optional(),
  /** Refresh the access token this long before its `exp`. */
  refreshAhead: duration().default(5 * 60_000),
  removeParameters: z.array(z.string().min(1)).default(DEFAULT_REMOVE_PARAMETERS),
  passHeaders: z
    .array(
      z
        .string()
        .regex(HEADER_TOKEN, 'expected a header name')
        .transform((s) => s.toLowerCase()),
    )
    .default(DEFAULT_PASS_HEADERS),
});

export type CodexSettings = z.output<typeof codexUpstreamSchema>;
export type CodexTokensConfig = z.output<typeof codexTokensSchema>;

/** What the backend is told about the client. One source: originator and version. */
export interface CodexIdentity {
  originator: string;
  version: string;
  userAgent: string;
}

/**
 * The identity headers. The backend answers 404 when `originator` and the User-Agent's first segment
 * disagree, so a configured `userAgent` must begin with `<originator>/<version>`; returns the problem
 * as a string otherwise.
 */
export function codexIdentity(s: CodexSettings): CodexIdentity | string {
  const head = `${s.originator}/${s.version}`;
  if (s.userAgent === undefined)
    return { originator: s.originator, version: s.version, userAgent: `${head} (tapgate)` };
  const first = s.userAgent.split(' ')[0];
  if (first !== head)
    return `userAgent must start with "${head}" (originator/version), so the three never disagree; got "${first}"`;
  return { originator: s.originator, version: s.version, userAgent: s.userAgent };
}
