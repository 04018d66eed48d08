/**
 * The demo, as a function: two simulated upstreams on loopback (one healthy, one that answers 429 with
 * Retry-After now and then and sometimes drops a stream), an in-process gateway with the dashboard,
 * and a traffic generator. `run.ts` is the command (`npm run demo`); the browser test uses this too.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DestinationStream } from 'pino';
import { parseConfig } from '../../core/config/config.js';
import type { Gateway } from '../../core/gateway.js';
import { startTraffic, type Traffic, type TrafficClient } from './traffic.js';
import { startSimUpstream, type SimUpstream } from './upstream-sim.js';
import { createGateway } from '../../app/gateway.js';

export interface DemoOptions {
  /** The port to try first; 0 or a busy port means any free port. Default 8788. */
  port?: number;
  /** Concurrent simulated clients (default 4); 0 sends no traffic. */
  concurrency?: number;
  /** Gateway log level (default `error`: the demo's console stays readable). */
  logLevel?: string;
  logDestination?: DestinationStream;
}

export interface Demo {
  gateway: Gateway;
  /** The gateway's origin, e.g. http://127.0.0.1:8788. */
  url: string;
  dashboardUrl: string;
  adminToken: string;
  clients: TrafficClient[];
  upstreams: SimUpstream[];
  traffic: Traffic | undefined;
  /** Stops the traffic, the gateway and the upstreams. */
  stop(): Promise<void>;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_NAMES = ['laptop', 'ci-bot', 'codex-cli'];

/** Whether `port` is free on 127.0.0.1 right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

const secret = (prefix: string) => prefix + randomBytes(18).toString('base64url');

export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const steady = await startSimUpstream('steady', { ttfbMs: [120, 700], wordsPerSecond: [25, 60] });
  const flaky = await startSimUpstream('flaky', {
    ttfbMs: [200, 1400],
    wordsPerSecond: [15, 40],
    rateLimit: 0.12,
    retryAfterS: [8, 25],
    drop: 0.1,
    serverError: 0.03,
  });
  const upstreams = [steady, flaky];

  const adminToken = secret('adm-');
  const clients = CLIENT_NAMES.map((name) => ({ name, key: secret('sk-demo-') }));
  const env: Record<string, string> = { TAPGATE_ADMIN_TOKEN: adminToken };
  clients.forEach((c, i) => (env[`DEMO_CLIENT_KEY_${i}`] = c.key));
  const wanted = opts.port ?? 8788;
  const port = wanted !== 0 && (await portFree(wanted)) ? wanted : 0;

  // `spare` has no API key, so it starts disabled: the dashboard shows why.
  const yaml = `
server:
  host: 127.0.0.1
  port: ${port}
  drainTimeout: 2s
auth:
  keys:
${clients.map((c, i) => `    - name: ${c.name}\n      key: \${DEMO_CLIENT_KEY_${i}}`).join('\n')}
proxy:
  transientCooldown: 10s
log:
  level: ${opts.logLevel ?? 'error'}
upstreams:
  - name: steady
    type: openai
    baseUrl: ${steady.url}/v1
    apiKey: sk-demo-upstream-steady
    maxConcurrency: 6
  - name: flaky
    type: openai
    baseUrl: ${flaky.url}/v1
    apiKey: sk-demo-upstream-flaky
  - name: spare
    type: openai
    baseUrl: ${steady.url}/v1
    apiKey: ""
    maxConcurrency: 2
plugins:
  - responses-routes
  - request-id
  - error-codes
  - name: dashboard
    options:
      path: /dashboard
      token: \${TAPGATE_ADMIN_TOKEN}
`;

  let gateway: Gateway;
  try {
    const loaded = parseConfig(yaml, path.join(HERE, 'demo.yaml'), env);
    gateway = await createGateway(
      loaded,
      opts.logDestination === undefined ? {} : { logDestination: opts.logDestination },
    );
    await gateway.listen();
  } catch (err) {
    await Promise.all(upstreams.map((u) => u.close()));
    throw err;
  }
  const url = gateway.url;
  const concurrency = opts.concurrency ?? 4;
  const traffic = concurrency > 0 ? startTraffic({ baseUrl: url, clients, concurrency }) : undefined;

  let stopping: Promise<void> | undefined;
  return {
    gateway,
    url,
    dashboardUrl: url + '/dashboard',
    adminToken,
    clients,
    upstreams,
    traffic,
    stop: () =>
      (stopping ??= (async () => {
        await traffic?.stop();
        await gateway.close(1000);
        await Promise.all(upstreams.map((u) => u.close()));
      })()),
  };
}
