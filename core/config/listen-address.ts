/** `host:port` listener addresses (`metrics.listen`): checked at config time, split at bind time. */

export const LISTEN_FORMAT =
  "expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464 ('' or false: no listener)";

export interface ListenAddress {
  host: string;
  port: number;
}

/** `''` (no listener) or a `host:port` with a port from 0 to 65535. */
export function isListenAddress(value: string): boolean {
  return value === '' || parseListenAddress(value) !== undefined;
}

/** The host (IPv6 without its brackets) and port, or undefined when `value` is no `host:port`. */
export function parseListenAddress(value: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}
