/**
 * The WebSocket front end's series: sockets open now, and upgrades by result. Turns are requests:
 * they are in the gateway's request series like any other (route `responses`).
 */
import { Counter, Gauge } from 'prom-client';
import type { PluginMetrics } from '../../../core/index.js';

export type UpgradeResult = 'accepted' | 'key_cap' | 'shutting_down';

export class SocketMetrics {
  private readonly upgrades: Counter<'result'> | undefined;

  constructor(metrics: PluginMetrics, open: () => number) {
    if (!metrics.enabled) return;
    new Gauge({
      name: 'tapgate_websocket_sessions',
      help: 'Responses WebSockets open now',
      registers: [metrics.registry],
      collect() {
        this.set(open());
      },
    });
    this.upgrades = new Counter({
      name: 'tapgate_websocket_upgrades_total',
      help: 'WebSocket upgrades on the Responses routes, by result (accepted, or refused: key_cap, shutting_down)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
  }

  upgrade(result: UpgradeResult): void {
    this.upgrades?.labels(result).inc();
  }
}
