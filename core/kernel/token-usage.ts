/**
 * Tokens one request used, as its upstream reported them (protocol plugins read them from the answer
 * and set `ctx.usage`; the core's limits and usage records read them at `finish`).
 */
export interface TokenUsage {
  input: number;
  /** Of `input`, served from the prompt cache. */
  cachedInput: number;
  output: number;
  /** Of `output`, spent on reasoning. */
  reasoning: number;
  /** As reported (`input + output` when the upstream gave no total). */
  total: number;
}
