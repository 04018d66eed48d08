/**
 * Just enough JWT reading for Codex tokens: the payload's claims, never the signature (tapgate does
 * not authenticate these tokens, it only needs their expiry and the ChatGPT account id).
 */

/** The claim namespace OpenAI puts its own fields under, in both the id_token and the access token. */
export const AUTH_CLAIM = 'https://api.openai.com/auth';

/** The payload of a JWT, or undefined when the text is not a JWT with a JSON object payload. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1]!.length === 0) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The token's `exp` in epoch milliseconds, or undefined when it has none (or is not a JWT). */
export function jwtExpiryMs(token: string): number | undefined {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/** `https://api.openai.com/auth` → `chatgpt_account_id`, from an id_token (or an access token). */
export function jwtAccountId(token: string): string | undefined {
  const auth = jwtClaims(token)?.[AUTH_CLAIM];
  if (typeof auth !== 'object' || auth === null) return undefined;
  const id = (auth as Record<string, unknown>).chatgpt_account_id;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** `https://api.openai.com/auth` → `chatgpt_plan_type` (`plus`, `pro`, …), or undefined. */
export function jwtPlanType(token: string): string | undefined {
  const auth = jwtClaims(token)?.[AUTH_CLAIM];
  if (typeof auth !== 'object' || auth === null) return undefined;
  const plan = (auth as Record<string, unknown>).chatgpt_plan_type;
  return typeof plan === 'string' && plan.length > 0 ? plan : undefined;
}
