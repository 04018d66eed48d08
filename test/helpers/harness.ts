/** Per-file test scaffolding: what a test starts is closed after it, newest first. */
import { startGateway, type TestGateway } from './gateway.js';
import { proxyConfig, type UpstreamSpec } from './proxy-config.js';
import { startUpstream, type TestUpstream, type UpstreamHandler } from './upstream.js';

export class Harness {
  private readonly cleanups: (() => Promise<void>)[] = [];

  /** Registers anything with `close()` for cleanup, and returns it. */
  track<T extends { close(): Promise<void> }>(thing: T): T {
    this.cleanups.push(() => thing.close());
    return thing;
  }

  async upstream(handler: UpstreamHandler): Promise<TestUpstream> {
    return this.track(await startUpstream(handler));
  }

  async gateway(
    upstreams: (string | UpstreamSpec)[],
    opts: Parameters<typeof proxyConfig>[1] = {},
  ): Promise<TestGateway> {
    return this.track(await startGateway(proxyConfig(upstreams, opts)));
  }

  async cleanup(): Promise<void> {
    while (this.cleanups.length > 0) await this.cleanups.pop()!();
  }
}
