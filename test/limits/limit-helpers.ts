/**
 * Helpers for the per-key limit tests: a gateway with a movable clock (GatewayOptions.clock), YAML
 * with limited keys, and upstream answers that report a known usage.
 */
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { registerSecret } from '../helpers/secret-scan.js';
import { responseObject, MESSAGE_ITEM, USAGE, type UpstreamHandler } from '../helpers/upstream.js';
import { SERVED_BY } from '../helpers/scripted-upstream.js';

/** A second client key, never limited. */
export const FREE_KEY = 'sk-client-free-9876543210';
registerSecret(FREE_KEY);

/** A clock a test moves: starts 10 s into a UTC minute, mid-month. */
export class TestClock {
  now = Date.UTC(2025, 0, 15, 12, 0, 10);
  readonly read = (): number => this.now;
  /** To `ms` into the next UTC minute. */
  nextMinute(ms = 0): void {
    this.now = Math.floor(this.now / 60_000 + 1) * 60_000 + ms;
  }
}

/** Gateway YAML: one openai upstream per origin, `tester` (CLIENT_KEY) with `limits`, `free` without. */
export function limitsConfig(
  upstreams: readonly { name: string; url: string }[],
  limits: Record<string, unknown>,
  state?: Record<string, unknown>,
): string {
  return gatewayConfig({
    keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}', limits } as never, { name: 'free', key: FREE_KEY }],
    state,
    upstreams: upstreams.map((u) => ({
      name: u.name,
      type: 'openai',
      baseUrl: u.url + '/v1',
      apiKey: upstreamKey(u.name),
    })),
  });
}

/** Like startGateway, with the limits' clock. */
export function startClockedGateway(yaml: string, clock: TestClock): Promise<TestGateway> {
  return startGateway(yaml, {}, 'test/limits.yaml', { clock: clock.read });
}

/** A `stream: false` answer reporting USAGE (12 tokens), with the upstream's own rate-limit headers. */
export function jsonAnswer(name: string, headers: Record<string, string> = {}): UpstreamHandler {
  return (_req, res) => {
    const body = JSON.stringify(
      responseObject(`resp_${name}`, 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
    );
    res.writeHead(200, { 'content-type': 'application/json', [SERVED_BY]: name, ...headers });
    res.end(body);
  };
}

/** The headers a pooled upstream account sends: a limited key's responses must not show them. */
export const UPSTREAM_RATE_HEADERS = {
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-limit-tokens': '2000000',
};

export const STREAM_BODY = { model: 'gpt-test', stream: true, input: 'hi' };
export const JSON_BODY = { model: 'gpt-test', input: 'hi' };
