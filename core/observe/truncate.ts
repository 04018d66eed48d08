/**
 * Text a client (or an upstream) chose is cut to a bound wherever the gateway repeats it: in log
 * lines, error messages and dashboard messages. One request must not be able to make a log line,
 * or an answer, megabytes long.
 */

/** The default bound for a client-supplied field (a path, a model name, a header value). */
export const MAX_ECHO_CHARS = 256;

/** `text` if it fits in `max` characters, else its first `max` characters and how many were cut. */
export function truncate(text: string, max: number = MAX_ECHO_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length - max} more characters)`;
}
