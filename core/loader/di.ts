// The one place reflect-metadata is loaded: every module reaches tsyringe through here,
// so the polyfill is in place before any decorator runs.
import 'reflect-metadata';
export { container, inject, injectable, type DependencyContainer } from 'tsyringe';

/** Injection tokens. tsx/esbuild emit no decorator metadata, so every parameter names its token. */
export const TOKENS = {
  Hooks: Symbol.for('tapgate.hooks'),
  Logger: Symbol.for('tapgate.logger'),
  Config: Symbol.for('tapgate.config'),
  Pool: Symbol.for('tapgate.pool'),
  Gateway: Symbol.for('tapgate.gateway'),
  PluginOptions: Symbol.for('tapgate.plugin-options'),
} as const;
