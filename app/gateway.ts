/** The gateway with tapgate's built-in plugins: what the CLI, the tests, the demo and the bench start. */
import type { LoadedConfig } from '../core/config/config.js';
import { Gateway, type GatewayOptions } from '../core/gateway.js';
import { BUILTINS } from './builtin-plugins.js';

export function createGateway(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  return Gateway.create(loaded, { builtins: BUILTINS, ...options });
}
