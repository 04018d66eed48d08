/**
 * Issue 12, lifecycle and observe hooks: `ready` (once, after listen, with the built pool and the
 * address, before any request), `closing` (once, when shutdown begins: before the drain), and
 * `attemptFailed` (each classified failed attempt, with its verdict; never a failure after output).
 * A probe plugin taps them, as any plugin would.
 */
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { BUILTINS } from '../../app/builtin-plugins.js';
import { parseConfig } from '../../core/config/config.js';
import { Gateway } from '../../core/gateway.js';
import type {
  Classification,
  GatewayClosing,
  GatewayReady,
  PluginClass,
  PluginContext,
} from '../../core/index.js';
import { CLIENT_KEY, LogCapture } from '../helpers/gateway.js';
import { jsonError, servedBy, startScripted, until, type ScriptedUpstream } from '../helpers/pool.js';
import { upstreamKey } from '../helpers/proxy-config.js';
import { deadline, parseSse, postJson } from '../helpers/raw.js';

interface Failed {
  reqId: string;
  attempts: number;
  upstream: string;
  status: number;
  verdict: Classification;
}

/** What the probe saw, in order. */
interface Seen {
  ready: GatewayReady[];
  closing: { info: GatewayClosing; active: number }[];
  failed: Failed[];
  /** At each request's `start`: had `ready` been called? */
  readyAtStart: boolean[];
  active: number;
}

function probe(seen: Seen, opts: { throwOnFailed?: boolean } = {}): PluginClass {
  return class Probe {
    static readonly meta = { name: 'probe' };
    apply(g: PluginContext): void {
      const h = g.hooks;
      h.ready.tap('probe', (r) => void seen.ready.push(r));
      h.closing.tap('probe', (info) => void seen.closing.push({ info, active: seen.active }));
      h.start.tap('probe', () => {
        seen.readyAtStart.push(seen.ready.length > 0);
        seen.active++;
      });
      h.finish.tap('probe', () => void seen.active--);
      h.attemptFailed.tap('probe', (ctx, upstream, error, verdict) => {
        seen.failed.push({
          reqId: ctx.id,
          attempts: ctx.attempts,
          upstream: upstream.name,
          status: error.status,
          verdict,
        });
        if (opts.throwOnFailed === true) throw new Error('probe: attemptFailed observer broke');
      });
    }
  };
}

function newSeen(): Seen {
  return { ready: [], closing: [], failed: [], readyAtStart: [], active: 0 };
}

function configFor(upstreams: ScriptedUpstream[]): string {
  return YAML.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { keys: [{ name: 'tester', key: '${TAPGATE_TEST_KEY}' }] },
    upstreams: upstreams.map((u, i) => ({
      name: u.name,
      type: 'openai',
      baseUrl: u.url + '/v1',
      apiKey: upstreamKey(u.name),
      priority: i,
    })),
    plugins: ['responses-routes', 'request-id', 'probe'],
  });
}

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

describe('lifecycle and observe hooks (issue 12)', () => {
  let up1: ScriptedUpstream;
  let up2: ScriptedUpstream;
  const gateways: Gateway[] = [];

  beforeEach(async () => {
    up1 = await startScripted('up1');
    up2 = await startScripted('up2');
  });
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close(0)));
    await Promise.all([up1.close(), up2.close()]);
  });

  async function create(
    seen: Seen,
    opts: { throwOnFailed?: boolean } = {},
  ): Promise<{ gw: Gateway; logs: LogCapture }> {
    const logs = new LogCapture();
    const loaded = parseConfig(configFor([up1, up2]), 'test/config.test.yaml', {
      TAPGATE_TEST_KEY: CLIENT_KEY,
    });
    loaded.config.server.port = 0;
    loaded.config.usage.enabled = false; // no usage database in the repository
    const gw = await Gateway.create(loaded, {
      builtins: { ...BUILTINS, plugins: { ...BUILTINS.plugins, probe: probe(seen, opts) } },
      logDestination: logs,
    });
    gateways.push(gw);
    return { gw, logs };
  }

  it('ready: once, after listen, with the built pool and the bound address, before any request', async () => {
    const seen = newSeen();
    const { gw } = await create(seen);
    assert.equal(seen.ready.length, 0, 'not before listen');
    const address = await gw.listen();
    assert.equal(seen.ready.length, 1);
    const ready = seen.ready[0]!;
    assert.equal(ready.pool, gw.pool);
    assert.deepEqual(
      ready.pool.upstreams.map((u) => u.name),
      ['up1', 'up2'],
    );
    assert.equal(ready.address.port, address.port);
    assert.equal(ready.url, gw.url);
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.deepEqual(seen.readyAtStart, [true]);
    assert.equal(seen.ready.length, 1, 'once');
  });

  it('closing: once, as shutdown begins, while requests still drain; also on a gateway that never listened', async () => {
    const seen = newSeen();
    const { gw } = await create(seen);
    await gw.listen();
    const held = up1.holdNext(5);
    const pending = postJson(gw.url, '/v1/responses', BODY);
    const stream = await held;
    const closed = gw.close(5000);
    // Called synchronously by close(), before the drain waits for anything.
    assert.deepEqual(seen.closing, [{ info: { drainMs: 5000 }, active: 1 }]);
    stream.finish();
    const res = await deadline(pending, 5000, 'drained request');
    assert.equal(res.status, 200);
    assert.equal(parseSse(res.text()).at(-1)?.event, 'response.completed');
    await deadline(closed, 5000, 'close');
    await gw.close();
    assert.equal(seen.closing.length, 1, 'once');

    const quiet = newSeen();
    const { gw: never } = await create(quiet);
    await never.close(0);
    assert.equal(quiet.closing.length, 1);
    assert.equal(quiet.ready.length, 0);
  });

  it('attemptFailed: each failed attempt with its upstream, error and verdict, after the cooldown', async () => {
    const seen = newSeen();
    const { gw } = await create(seen);
    await gw.listen();
    up1.answer(jsonError(500, { error: { message: 'boom', type: 'server_error', param: null, code: null } }));
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.equal(servedBy(res), 'up2');
    assert.equal(seen.failed.length, 1);
    const f = seen.failed[0]!;
    assert.equal(f.upstream, 'up1');
    assert.equal(f.status, 500);
    assert.equal(f.attempts, 1);
    assert.equal(f.reqId, res.headers['x-request-id']);
    assert.equal(f.verdict.retry, 'switch');
    assert.equal(f.verdict.cooldownKind, 'transient');
    assert.ok((f.verdict.cooldownMs ?? 0) > 0);
    // The verdict's cooldown is in the pool's state by the time observers hear of it.
    assert.ok(gw.pool.state.cooldown('up1', 'gpt-test', Date.now()) !== undefined);
  });

  it('attemptFailed: not called for a failure after output (the request ends; finish reports it)', async () => {
    const seen = newSeen();
    const { gw } = await create(seen);
    await gw.listen();
    const held = up1.holdNext(6);
    const pending = postJson(gw.url, '/v1/responses', BODY);
    (await held).res.destroy();
    const res = await deadline(pending, 5000, 'broken stream');
    assert.equal(res.status, 200);
    assert.equal(parseSse(res.text()).at(-1)?.event, 'response.failed');
    await until(() => seen.active === 0, 'request finished');
    assert.deepEqual(seen.failed, []);
  });

  it('attemptFailed: an observer that throws is logged; the request still fails over', async () => {
    const seen = newSeen();
    const { gw, logs } = await create(seen, { throwOnFailed: true });
    await gw.listen();
    up1.answer(jsonError(503, { error: { message: 'down', type: 'server_error', param: null, code: null } }));
    const res = await postJson(gw.url, '/v1/responses', BODY);
    assert.equal(res.status, 200);
    assert.equal(servedBy(res), 'up2');
    assert.equal(seen.failed.length, 1);
    await until(
      () => logs.lines.some((l) => l.includes('an attemptFailed tap threw')),
      'the observer failure is logged',
    );
  });
});
