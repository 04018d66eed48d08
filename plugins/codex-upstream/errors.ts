/** The error this plugin raises: a failed token refresh. */
import { GatewayError } from '../../core/index.js';

/** A token refresh failed, so the request cannot go out on this account. */
export class CodexRefreshError extends GatewayError {
  constructor(
    /** The login is dead (the upstream was disabled), as opposed to a transient failure. */
    readonly terminal: boolean,
    message: string,
  ) {
    super('CODEX_REFRESH_FAILED', 502, 'upstream_error', message, {
      phase: 'connect',
      errorCode: 'upstream_error',
    });
  }
}
Object.defineProperty(CodexRefreshError, 'name', { value: 'CodexRefreshError' });
