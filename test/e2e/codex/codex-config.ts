/**
 * Network isolation, layer 1: Codex's own config. `--strict-config` makes Codex reject any key it
 * does not know, so a misspelt safety setting fails the run instead of being ignored.
 */
import { CODEX_IDLE_MS, KEY_ENV, MODEL, SCENARIO_ENV, SCENARIO_HEADER } from './common.js';

export interface CodexConfigOptions {
  /** The provider's base URL: the gateway's (or, for the baseline, the upstream's) `/v1`. */
  baseUrl: string;
  /** The loopback trap, standing in for the ChatGPT backend and the OpenAI API. */
  trapUrl: string;
  /** `stream_max_retries`. */
  retries: number;
  /** `supports_websockets`: Codex then opens `GET {baseUrl}/responses` as a WebSocket first. */
  websockets: boolean;
}

export function codexConfig(o: CodexConfigOptions): string {
  return `# Written by test/e2e/codex/run.ts. Codex may talk to the gateway on 127.0.0.1 and nothing else.
model = "${MODEL}"
model_provider = "tapgate"
check_for_update_on_startup = false
web_search = "disabled"
# Anything meant for the ChatGPT backend or the OpenAI API lands on the loopback trap.
chatgpt_base_url = "${o.trapUrl}/backend-api/"
openai_base_url = "${o.trapUrl}/v1"

# Seen on the wire without these: OTLP metrics to ab.chatgpt.com (the default metrics exporter).
[analytics]
enabled = false

[otel]
exporter = "none"
trace_exporter = "none"
metrics_exporter = "none"
log_user_prompt = false

[feedback]
enabled = false

[history]
persistence = "none"

[features]
# Seen on the wire without it: plugin marketplace sync with github.com, api.github.com and chatgpt.com.
plugins = false
# The rest reach remote services only in some setups; off all the same.
remote_plugin = false
plugin_sharing = false
apps = false
tool_suggest = false
skill_mcp_dependency_install = false
image_generation = false
browser_use = false
browser_use_external = false
computer_use = false
in_app_browser = false
in_app_updates = false
api_key_model_discovery = false
daemon_auto_start = false
memories = false
# Codex retries a refused connection forever by default.
unbounded_connection_retries = false

[model_providers.tapgate]
name = "tapgate"
base_url = "${o.baseUrl}"
env_key = "${KEY_ENV}"
wire_api = "responses"
supports_websockets = ${o.websockets}
request_max_retries = 0
stream_max_retries = ${o.retries}
stream_idle_timeout_ms = ${CODEX_IDLE_MS}
env_http_headers = { "${SCENARIO_HEADER}" = "${SCENARIO_ENV}" }
`;
}
