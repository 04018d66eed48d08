import assert from 'node:assert/strict';
import { parseConfig } from '../../core/config/config.js';
import { LogCapture } from '../helpers/gateway.js';
import { createGateway } from '../../app/gateway.js';

/** The mapping as the gateway applies it: the real hook, built by a real boot. */
async function mapperFor(pluginYaml: string): Promise<(code: string | null, type: string) => string | null> {
  const yaml = `server: { port: 0 }\nplugins:\n${pluginYaml}\nusage: { enabled: false }\n`;
  const gw = await createGateway(parseConfig(yaml, 'x.yaml', {}), { logDestination: new LogCapture() });
  return (code, type) => gw.hooks.mapErrorCode.call(code ?? type, type, {} as never);
}

describe('plugin error-codes', () => {
  it('maps the internal types of the table', async () => {
    const map = await mapperFor('  - error-codes');
    assert.equal(map('rate_limit_error', 'rate_limit_error'), 'rate_limit_exceeded');
    assert.equal(map('invalid_request_error', 'invalid_request_error'), 'invalid_request');
    assert.equal(map('permission_error', 'permission_error'), 'permission_denied');
    assert.equal(map('authentication_error', 'authentication_error'), 'authentication_failed');
    assert.equal(map('upstream_error', 'upstream_error'), 'upstream_error');
    assert.equal(map('server_error', 'server_error'), 'server_error');
    assert.equal(map('api_error', 'api_error'), 'server_error');
    assert.equal(map('', ''), 'server_error');
  });

  it('passes anything without a mapping through unchanged', async () => {
    const map = await mapperFor('  - error-codes');
    assert.equal(map('context_length_exceeded', 'invalid_request_error'), 'context_length_exceeded');
    assert.equal(map('server_is_overloaded', 'service_unavailable_error'), 'server_is_overloaded');
  });

  it('options.map overrides and extends the table', async () => {
    const map = await mapperFor(
      '  - name: error-codes\n    options:\n      map: { upstream_error: bad_gateway, slow_down: server_is_overloaded }',
    );
    assert.equal(map('upstream_error', 'upstream_error'), 'bad_gateway');
    assert.equal(map('slow_down', 'x'), 'server_is_overloaded');
    assert.equal(map('rate_limit_error', 'rate_limit_error'), 'rate_limit_exceeded');
  });

  it('without the plugin, codes pass through unmapped', async () => {
    const map = await mapperFor('  - request-id');
    assert.equal(map('rate_limit_error', 'rate_limit_error'), 'rate_limit_error');
  });

  it('rejects a bad options.map at boot, naming the key and line', async () => {
    await assert.rejects(
      mapperFor('  - name: error-codes\n    options:\n      map: { upstream_error: 42 }\n      mapp: {}'),
      (err: Error) => {
        assert.equal(err.name, 'PluginOptionsError');
        assert.match(
          err.message,
          /x\.yaml:5:30 plugins\[0\]\.options\.map\.upstream_error: Invalid input: expected string/,
        );
        assert.match(err.message, /x\.yaml:6:7 plugins\[0\]\.options\.mapp: unknown key/);
        return true;
      },
    );
  });
});
