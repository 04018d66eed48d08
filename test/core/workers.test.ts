/**
 * `server.workers`: several processes on one port, drained together on a signal; configs that cannot
 * run in several processes are refused, among them upstream types that say so (`multiProcess`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  ConfigError,
  Gateway,
  parseConfig,
  type PluginContext,
  type PluginRegistry,
} from '../../core/index.js';
import { LogCapture } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../app/bin.js');

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('server.workers (node:cluster)', () => {
  let dir: string;
  let upstream: TestUpstream;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-workers-'));
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_w', object: 'response', status: 'completed', output: [] }));
    });
  });
  after(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('two workers serve one port; a Ctrl-C to the process group drains both and exits 0', async () => {
    const port = await freePort();
    const file = join(dir, 'two.yaml');
    writeFileSync(
      file,
      `server: { host: 127.0.0.1, port: ${port}, workers: 2 }\nupstreams: [{ name: up, type: openai, baseUrl: "${upstream.url}/v1", apiKey: sk-upstream-key-1 }]\nplugins: [responses-routes]\n`,
    );
    // detached: its own process group, so a signal to the group reaches primary and workers alike.
    const child = spawn(process.execPath, [BIN, '--config', file], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const listening = new Promise<void>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/"msg":"tapgate listening"/g) ?? []).length === 2) resolve();
      });
    });
    try {
      await listening;
      for (let i = 0; i < 10; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/v1/responses`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"model":"m","input":"x"}',
        });
        assert.equal(r.status, 200);
        await r.text();
      }
      process.kill(-child.pid!, 'SIGINT');
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 0, out);
      assert.equal(
        (out.match(/"msg":"tapgate stopped"/g) ?? []).length,
        2,
        'both workers drained and stopped',
      );
      assert.doesNotMatch(out, /second signal/);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  });

  for (const [name, yaml, message] of [
    [
      'codex upstreams',
      `server: { port: 9, workers: 2 }\nupstreams: [{ name: c, type: codex, tokens: { access_token: a, refresh_token: r, account_id: x } }]\n`,
      /server\.workers: server\.workers > 1 with codex upstreams needs state\.store: redis/,
    ],
    ['port 0', `server: { port: 0, workers: 2 }\nupstreams: []\n`, /needs a fixed server\.port/],
  ] as const) {
    it(`refuses several workers with ${name}, naming server.workers and its line`, async () => {
      const file = join(dir, `bad-${name.replace(' ', '-')}.yaml`);
      writeFileSync(file, yaml);
      const child = spawn(process.execPath, [BIN, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(child, 'exit')) as [number];
      assert.notEqual(code, 0);
      assert.match(err, message);
      assert.match(err, /:1:\d+ server\.workers/);
    });
  }

  describe('an upstream type’s multiProcess reason (checked by the gateway, not the CLI)', () => {
    /** Upstreams of type `solo` initialised so far. */
    let inits = 0;
    /** Provides type `solo`, which cannot run in several processes, and type `many`, which can. */
    class TypesPlugin {
      static readonly meta = { name: 'types', options: z.strictObject({}) };
      apply(ctx: PluginContext): void {
        const schema = z.strictObject({ baseUrl: z.string() });
        ctx.upstreamTypes.register({
          type: 'solo',
          schema,
          multiProcess: 'its state lives in one process',
          init: () => inits++,
        });
        ctx.upstreamTypes.register({ type: 'many', schema });
      }
    }
    const registry: PluginRegistry = {
      plugins: { types: TypesPlugin as never },
      upstreamTypeProviders: { solo: 'types', many: 'types' },
    };
    const boot = (type: string, processes: number) =>
      Gateway.create(
        parseConfig(
          `server: { port: 8787, workers: 2 }\nupstreams: [{ name: u, type: ${type}, baseUrl: "http://127.0.0.1:9/v1" }]\nusage: { enabled: false }\n`,
          'workers.yaml',
          {},
        ),
        { builtins: registry, logDestination: new LogCapture(), processes },
      );

    it('refuses it with processes > 1, naming server.workers, its line and the reason', async () => {
      inits = 0;
      await assert.rejects(boot('solo', 2), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          /workers\.yaml:1:\d+ server\.workers: server\.workers > 1 with solo upstreams needs state\.store: redis: its state lives in one process/,
        );
        return true;
      });
      assert.equal(inits, 0, 'refused before any upstream is initialised');
    });

    it('accepts it in one process, and accepts a type without a reason in several', async () => {
      await (await boot('solo', 1)).close(0);
      await (await boot('many', 2)).close(0);
    });
  });
});
