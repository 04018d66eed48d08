/** Maps internal error types to the Responses `error.code` clients act on. */
import { z } from 'zod';
import { Stage, type PluginContext, type TapgatePlugin } from '../../core/index.js';

const NAME = 'error-codes';

/** The default table; `options.map` overrides or extends it. The empty key stands for "no code". */
export const DEFAULT_ERROR_CODES: Readonly<Record<string, string>> = {
  rate_limit_error: 'rate_limit_exceeded',
  invalid_request_error: 'invalid_request',
  permission_error: 'permission_denied',
  authentication_error: 'authentication_failed',
  upstream_error: 'upstream_error',
  server_error: 'server_error',
  api_error: 'server_error',
  '': 'server_error',
};

const optionsSchema = z.strictObject({
  map: z.record(z.string(), z.string().min(1)).default({}),
});
type Options = z.output<typeof optionsSchema>;

export default class ErrorCodesPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: optionsSchema };
  private table: Readonly<Record<string, string>>;

  constructor(options: Options) {
    this.table = { ...DEFAULT_ERROR_CODES, ...options.map };
  }

  /** A config reload's map: the table is read per error, so the next error uses it. */
  reload(options: Options): void {
    this.table = { ...DEFAULT_ERROR_CODES, ...options.map };
  }

  apply(gateway: PluginContext): void {
    gateway.hooks.mapErrorCode.tap({ name: NAME, stage: Stage.DEFAULT }, (code) => {
      const table = this.table;
      const key = code ?? '';
      return Object.hasOwn(table, key) ? table[key]! : key;
    });
  }
}
