/** Named boot errors for plugins, in the style of Fastify's plugin checks. */

export class PluginError extends Error {
  constructor(
    message: string,
    /** `file:line:col` of the plugin's entry in config.yaml, when known. */
    readonly where?: string,
    options?: { cause?: unknown },
  ) {
    super(where ? `${where} ${message}` : message, options);
  }
}

export class PluginNotFoundError extends PluginError {
  override name = 'PluginNotFoundError';
}
export class PluginLoadError extends PluginError {
  override name = 'PluginLoadError';
}
export class PluginDependencyError extends PluginError {
  override name = 'PluginDependencyError';
}
export class PluginOptionsError extends PluginError {
  override name = 'PluginOptionsError';
}
export class PluginApplyError extends PluginError {
  override name = 'PluginApplyError';
}
export class DuplicatePluginError extends PluginError {
  override name = 'DuplicatePluginError';
}
