/**
 * The URL a person points clients at, for the start-up line. A wildcard bind (0.0.0.0, ::) is not an
 * address a client can dial, so the loopback address of the same family stands in for it.
 */
import type { AddressInfo } from 'node:net';

export interface ClientUrls {
  /** The gateway's root, e.g. http://127.0.0.1:8787. */
  url: string;
  /** What the OpenAI SDKs (`baseURL`, OPENAI_BASE_URL) and Codex CLI (`base_url`) take: url + `/v1`. */
  baseURL: string;
}

export function clientUrls(addr: AddressInfo): ClientUrls {
  let host = addr.address;
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::' || host === '::0') host = '::1';
  const url = `http://${addr.family === 'IPv6' || host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  return { url, baseURL: `${url}/v1` };
}

/** The start-up line's message: the base URL, and how the README's clients take it. */
export function clientsMessage({ baseURL }: ClientUrls): string {
  return (
    `point clients at ${baseURL} (OpenAI SDKs: baseURL or OPENAI_BASE_URL; ` +
    `Codex CLI: -c openai_base_url="${baseURL}" or a model_providers base_url)`
  );
}
