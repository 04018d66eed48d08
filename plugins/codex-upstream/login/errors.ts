/** A login that did not complete. Its message is for the user, and never holds a token. */
export class LoginError extends Error {
  override name = 'LoginError';
}

/** At most `max` printable characters of what an issuer said, for an error message. */
export function issuerText(value: unknown, max = 200): string {
  if (typeof value !== 'string') return '';
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
