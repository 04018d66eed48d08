/**
 * Typed per-plugin request state (issue 12: `ctx.state(key)` in place of the untyped `ctx.locals`):
 * each request has its own value, made by the key's `init` on first use, kept across the request's
 * hooks and attempts; a key never asked for is never made.
 */
import assert from 'node:assert/strict';
import { z } from 'zod';
import { BUILTINS } from '../../app/builtin-plugins.js';
import {
  createStateKey,
  Gateway,
  parseConfig,
  type PluginContext,
  type PluginRegistry,
} from '../../core/index.js';
import { LogCapture } from '../helpers/gateway.js';
import { until } from '../helpers/pool.js';
import { postJson } from '../helpers/raw.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const ATTEMPTS = createStateKey('probe.attempts', (ctx) => ({ id: ctx.id, attempts: 0 }));
let unusedInits = 0;
const UNUSED = createStateKey('probe.unused', () => ++unusedInits);

interface Seen {
  id: string;
  state: { id: string; attempts: number } | undefined;
  unused: number | undefined;
}
const seen: Seen[] = [];

/** Counts a request's upstream attempts in its own state, and reports it at `finish`. */
class ProbePlugin {
  static readonly meta = { name: 'probe', options: z.strictObject({}) };
  apply(gateway: PluginContext): void {
    gateway.hooks.upstreamAttempt.tap('probe', (ctx) => {
      ctx.state(ATTEMPTS).attempts++;
    });
    gateway.hooks.finish.tap('probe', (ctx) => {
      seen.push({ id: ctx.id, state: ctx.peekState(ATTEMPTS), unused: ctx.peekState(UNUSED) });
    });
  }
}

describe('typed per-plugin request state', () => {
  let A: TestUpstream;
  let B: TestUpstream;
  let gw: Gateway;

  before(async () => {
    // A fails the requests that say so (before output: the core fails over to B).
    A = await startUpstream((_req, res, rec) => {
      if (rec.body.toString().includes('fail-on-A')) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"A failed","type":"server_error","code":null}}');
        return;
      }
      writeSseHead(res);
      res.end(happyStream('resp_A').join(''));
    });
    B = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.end(happyStream('resp_B').join(''));
    });
    const registry: PluginRegistry = {
      plugins: { ...BUILTINS.plugins, probe: ProbePlugin as never },
      upstreamTypeProviders: BUILTINS.upstreamTypeProviders,
    };
    const yaml = `server: { host: 127.0.0.1, port: 0 }
upstreams:
  - { name: A, type: openai, baseUrl: "${A.url}/v1", apiKey: sk-upstream-a, priority: 0 }
  - { name: B, type: openai, baseUrl: "${B.url}/v1", apiKey: sk-upstream-b, priority: 1 }
plugins: [responses-routes, probe]
usage: { enabled: false }
`;
    gw = await Gateway.create(parseConfig(yaml, 'state.yaml', {}), {
      builtins: registry,
      logDestination: new LogCapture(),
    });
    await gw.listen();
  });
  after(async () => {
    await gw.close(0);
    await Promise.all([A.close(), B.close()]);
  });
  beforeEach(() => {
    seen.length = 0;
    unusedInits = 0;
  });

  it('one value per request, made on first use and kept across attempts; an unused key is never made', async () => {
    const body = { model: 'm', input: 'fail-on-A', stream: true };
    const [r1, r2] = await Promise.all([
      postJson(gw.url, '/v1/responses', body),
      postJson(gw.url, '/v1/responses', { ...body, input: 'fine' }),
    ]);
    assert.equal(r1.status, 200);
    assert.equal(r2.status, 200);
    await until(() => seen.length === 2, 'both requests to finish');
    for (const s of seen) {
      assert.ok(s.state !== undefined, 'the state was made at the first attempt');
      assert.equal(s.state.id, s.id, 'init got the request’s own context');
      assert.equal(s.unused, undefined);
    }
    assert.notEqual(seen[0]!.state, seen[1]!.state, 'each request has its own value');
    const failedOver = seen.find((s) => s.state!.attempts === 2);
    assert.ok(failedOver, `the failed-over request counted both attempts: ${JSON.stringify(seen)}`);
    assert.equal(unusedInits, 0, 'peekState never makes a value');
  });

  it('a request answered without an upstream attempt never makes the state', async () => {
    const res = await fetch(`${gw.url}/nowhere`);
    await res.arrayBuffer();
    await until(() => seen.length === 1, 'the request to finish');
    assert.equal(seen[0]!.state, undefined);
  });
});
