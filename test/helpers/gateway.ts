/** Starts a real gateway in-process from YAML text, listening on 127.0.0.1:0, with its logs captured. */
import { Writable } from 'node:stream';
import { parseConfig } from '../../core/config/config.js';
import type { Gateway, GatewayOptions } from '../../core/gateway.js';
import { recordOutput, registerSecret, registerSecretsIn } from './secret-scan.js';
import { createGateway } from '../../app/gateway.js';
import { gatewayConfig } from './proxy-config.js';

export interface TestGateway {
  gw: Gateway;
  url: string;
  /** Parsed pino lines. */
  logs: Record<string, unknown>[];
  /** The raw text pino wrote, for secret scans. */
  rawLogs(): string;
  close(drainMs?: number): Promise<void>;
}

export const CLIENT_KEY = 'sk-client-test-0123456789';
registerSecret(CLIENT_KEY, 'sk-upstream-secret-abcdef');

export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line) this.lines.push(line);
    cb();
  }
}

export async function startGateway(
  yaml: string,
  env: Record<string, string> = {},
  file = 'test/config.test.yaml',
  options: Omit<GatewayOptions, 'logDestination'> = {},
): Promise<TestGateway> {
  const capture = new LogCapture();
  const loaded = parseConfig(yaml, file, { TAPGATE_TEST_KEY: CLIENT_KEY, ...env });
  loaded.config.server.port = 0;
  // YAML written by hand without a `usage` section: no database in the repository (see gatewayConfig).
  if (!/^usage:/m.test(yaml)) loaded.config.usage.enabled = false;
  // Likewise metrics: test gateways must not all bind the default 127.0.0.1:9464.
  if (!/^metrics:/m.test(yaml)) loaded.config.metrics.enabled = false;
  // TAPGATE_TEST_TRANSPORT=http-proxy-3 runs a suite on that transport, unless a test picks one itself.
  const transport = process.env.TAPGATE_TEST_TRANSPORT;
  if ((transport === 'undici' || transport === 'http-proxy-3') && !/^\s+transport:/m.test(yaml))
    loaded.config.proxy.transport = transport;
  registerSecretsIn(loaded.config);
  recordOutput('log', () => capture.lines.join('\n'));
  const gw = await createGateway(loaded, { ...options, logDestination: capture });
  await gw.listen();
  return {
    gw,
    url: gw.url,
    get logs() {
      return capture.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    rawLogs: () => capture.lines.join('\n'),
    close: (drainMs = 0) => gw.close(drainMs),
  };
}

/** The usual config: one openai upstream at `upstreamUrl`, the default plugins, one client key; `extra` is appended. */
export function basicConfig(upstreamUrl: string, extra = ''): string {
  const upstream = {
    name: 'up1',
    type: 'openai',
    baseUrl: `${upstreamUrl}/v1`,
    apiKey: 'sk-upstream-secret-abcdef',
  };
  // The leading newline keeps the line numbers tests see in config errors.
  return '\n' + gatewayConfig({ upstreams: [upstream] }) + extra;
}
