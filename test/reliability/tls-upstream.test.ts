/**
 * Upstreams over TLS (Codex accounts are https): a trusted certificate serves, on one kept-alive TLS
 * connection, with the upstream's host name as SNI; an untrusted one, or no TLS at all where TLS was
 * asked for, fails before anything is sent and says it was TLS. On both transports.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import YAML from 'yaml';
import { killStrayClis, runCli } from '../helpers/cli.js';
import { CLIENT_KEY, startGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { poolConfig } from '../helpers/pool.js';
import { postJson } from '../helpers/raw.js';
import { happyStream, startUpstream } from '../helpers/upstream.js';

const TRANSPORTS = ['undici', 'http-proxy-3'] as const;
const STREAM = { model: 'gpt-test', input: 'hi', stream: true };

interface TlsUpstream {
  port: number;
  requests: number;
  /** TLS connections accepted, and the server name each asked for. */
  servernames: (string | false | null)[];
  close(): Promise<void>;
}

/** An https upstream with `cert`, answering every request with the happy stream. */
async function startTlsUpstream(key: Buffer, cert: Buffer): Promise<TlsUpstream> {
  const up: TlsUpstream = { port: 0, requests: 0, servernames: [], close: async () => {} };
  const server = https.createServer({ key, cert }, (req, res) => {
    up.requests++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(happyStream('resp_tls').join(''));
    });
  });
  server.on('secureConnection', (socket: TLSSocket) => up.servernames.push(socket.servername));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as AddressInfo).port;
  up.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return up;
}

describe('upstreams over TLS', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  let certFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-tls-'));
    certFile = join(dir, 'cert.pem');
    // A self-signed certificate for localhost, made for this run only.
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
    });
    key = Buffer.from(pems.private);
    cert = Buffer.from(pems.cert);
    writeFileSync(certFile, cert);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => killStrayClis());

  for (const transport of TRANSPORTS) {
    describe(`proxy.transport: ${transport}`, () => {
      it('a trusted certificate: streams served in full on one kept-alive TLS connection, SNI the upstream host', async () => {
        const up = h.track(await startTlsUpstream(key, cert));
        const config = join(dir, `gateway-${transport}.yaml`);
        writeFileSync(
          config,
          YAML.stringify({
            server: { host: '127.0.0.1', port: 0, workers: 1 },
            auth: { keys: [{ name: 'test', key: '${TAPGATE_KEY}' }] },
            proxy: { transport },
            upstreams: [
              {
                name: 'tls',
                type: 'openai',
                baseUrl: `https://localhost:${up.port}/v1`,
                apiKey: 'sk-upstream-tls-0123456789',
              },
            ],
            plugins: ['responses-routes', 'request-id', 'error-codes'],
          }),
        );
        // The child trusts the test's certificate the way a deployment adds a private CA.
        const cli = runCli(['--config', config], {
          env: { TAPGATE_KEY: CLIENT_KEY, NODE_EXTRA_CA_CERTS: certFile, TAPGATE_NO_CACHE: '' },
        });
        const port = (await cli.logLine('tapgate listening')).port as number;
        for (let i = 0; i < 2; i++) {
          const r = await postJson(`http://127.0.0.1:${port}`, '/v1/responses', STREAM);
          assert.equal(r.status, 200, r.text());
          assert.equal(r.text(), happyStream('resp_tls').join(''));
        }
        assert.equal(up.requests, 2);
        assert.deepEqual(up.servernames, ['localhost'], 'one TLS connection, named localhost');
        cli.child.kill('SIGTERM');
        assert.equal((await cli.closed).code, 0);
      });

      it('an untrusted certificate: 502 that names the TLS failure, nothing sent', async () => {
        const up = h.track(await startTlsUpstream(key, cert));
        const g = h.track(
          await startGateway(
            poolConfig([{ name: 'tls', url: `https://localhost:${up.port}` }], { proxy: { transport } }),
          ),
        );
        const r = await postJson(g.url, '/v1/responses', STREAM);
        assert.equal(r.status, 502, r.text());
        const error = r.json().error as { message: string };
        assert.match(error.message, /^Upstream TLS handshake failed \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
        assert.equal(up.requests, 0);
      });

      it('https:// to a plain HTTP port: 502 that names the TLS failure', async () => {
        const plain = h.track(
          await startUpstream((_req, res) => {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.end(happyStream().join(''));
          }),
        );
        const port = new URL(plain.url).port;
        const g = h.track(
          await startGateway(
            poolConfig([{ name: 'plain', url: `https://127.0.0.1:${port}` }], { proxy: { transport } }),
          ),
        );
        const r = await postJson(g.url, '/v1/responses', STREAM);
        assert.equal(r.status, 502, r.text());
        assert.match((r.json().error as { message: string }).message, /^Upstream TLS handshake failed \(/);
      });
    });
  }
});
