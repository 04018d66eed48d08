/**
 * The per-test harness: every server a test starts (plain, scripted and fault upstreams, a blackhole,
 * codex backends and token servers, gateways) goes through one Harness, which closes them after the
 * test, newest first. `Harness.perTest()` registers that cleanup as an afterEach hook itself.
 */
import { startCodexBackend, type CodexBackend } from './codex-backend.js';
import { startTokenServer, type TokenServer } from './codex-token-server.js';
import { startFaultUpstream, type FaultUpstream } from './fault-upstream.js';
import { startGateway, type TestGateway } from './gateway.js';
import { proxyConfig, type UpstreamSpec } from './proxy-config.js';
import { startScripted, type ScriptedUpstream } from './scripted-upstream.js';
import { startBlackhole, type Blackhole } from './stall.js';
import { startUpstream, type TestUpstream, type UpstreamHandler } from './upstream.js';

export class Harness {
  private readonly cleanups: (() => Promise<void>)[] = [];

  /** A harness whose cleanup runs after each test of the enclosing suite (or file). */
  static perTest(): Harness {
    const h = new Harness();
    afterEach(() => h.cleanup());
    return h;
  }

  /** Registers anything with `close()` for cleanup, and returns it. */
  track<T extends { close(): Promise<void> }>(thing: T): T {
    this.cleanups.push(() => thing.close());
    return thing;
  }

  async upstream(handler: UpstreamHandler): Promise<TestUpstream> {
    return this.track(await startUpstream(handler));
  }

  /** An upstream answering from a queue a test fills (see scripted-upstream.ts). */
  async scripted(name: string): Promise<ScriptedUpstream> {
    return this.track(await startScripted(name));
  }

  async fault(name?: string): Promise<FaultUpstream> {
    return this.track(await startFaultUpstream(name));
  }

  /** A port that accepts connections and never answers. */
  async blackhole(): Promise<Blackhole> {
    return this.track(await startBlackhole());
  }

  async codexBackend(accepts: (access: string) => boolean): Promise<CodexBackend> {
    return this.track(await startCodexBackend(accepts));
  }

  async tokenServer(): Promise<TokenServer> {
    return this.track(await startTokenServer());
  }

  /** A gateway with openai upstreams (see proxyConfig). */
  async gateway(
    upstreams: (string | UpstreamSpec)[],
    opts: Parameters<typeof proxyConfig>[1] = {},
  ): Promise<TestGateway> {
    return this.gatewayYaml(proxyConfig(upstreams, opts));
  }

  /** A gateway from any YAML (basicConfig, poolConfig, dashboardConfig, gatewayConfig…). */
  async gatewayYaml(yaml: string, env?: Record<string, string>, file?: string): Promise<TestGateway> {
    return this.track(await startGateway(yaml, env, file));
  }

  /** Closes everything, newest first; one that fails to close does not keep the rest open. */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    while (this.cleanups.length > 0) await this.cleanups.pop()!().catch((e: unknown) => errors.push(e));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} test servers failed to close`);
  }
}
