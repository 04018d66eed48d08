/**
 * `npm run demo`: a moving dashboard in one command, with no credentials of your own. It starts two
 * simulated upstreams on loopback, the gateway with the dashboard, and a few simulated clients, prints
 * the dashboard's URL and admin token, and runs until Ctrl-C.
 *
 *   npm run demo                      # port 8788 if free, else any free port
 *   DEMO_PORT=9000 npm run demo       # another port (0: any free port)
 *   DEMO_LOG_LEVEL=info npm run demo  # the gateway's JSON access log too
 */
import { startDemo } from './demo.js';

const port = process.env.DEMO_PORT === undefined ? 8788 : Number(process.env.DEMO_PORT);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`DEMO_PORT must be a port number, got ${JSON.stringify(process.env.DEMO_PORT)}`);
  process.exit(2);
}

const demo = await startDemo({ port, logLevel: process.env.DEMO_LOG_LEVEL ?? 'error' });

console.log(`
tapgate demo is running (everything stays on this machine).

  Dashboard    ${demo.dashboardUrl}
  Admin token  ${demo.adminToken}

  Open the dashboard and paste the admin token into the login form.

  Gateway      ${demo.url}/v1   (client key for your own calls: ${demo.clients[0]!.key})
  Upstreams    steady (healthy), flaky (429s with Retry-After, dropped streams), spare (disabled: no API key)
  Traffic      4 simulated callers (client keys ${demo.clients.map((c) => c.name).join(', ')}), streamed and plain calls

Press Ctrl-C to stop.
`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    console.log('\nstopping now');
    process.exit(1);
  }
  stopping = true;
  console.log(`\n${signal}: stopping the demo…`);
  const s = demo.traffic?.stats;
  await demo.stop();
  if (s !== undefined)
    console.log(
      `sent ${s.sent} requests: ${s.ok} ok, ${s.failed} failed, ${s.aborted} given up by the client`,
    );
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
