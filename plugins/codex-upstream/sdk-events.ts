/**
 * Codex-backend events that plain SDK clients cannot take (protocol §5 case 22): the backend sends
 * `response.metadata` and other types outside the SDK's `ResponseStreamEvent` union, on which
 * `responses.stream()` throws. For clients that are not Codex they are dropped.
 */
import type { SseEvent } from '../../core/index.js';

/** The SDK's `ResponseStreamEvent` union (protocol §1.2), plus `keepalive`, which it ignores. */
export const OFFICIAL_EVENT_TYPES: ReadonlySet<string> = new Set([
  'response.created',
  'response.queued',
  'response.in_progress',
  'response.completed',
  'response.failed',
  'response.incomplete',
  'error',
  'response.output_item.added',
  'response.output_item.done',
  'response.content_part.added',
  'response.content_part.done',
  'response.output_text.delta',
  'response.output_text.done',
  'response.output_text.annotation.added',
  'response.refusal.delta',
  'response.refusal.done',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.done',
  'response.custom_tool_call_input.delta',
  'response.custom_tool_call_input.done',
  'response.mcp_call_arguments.delta',
  'response.mcp_call_arguments.done',
  'response.reasoning_summary_part.added',
  'response.reasoning_summary_part.done',
  'response.reasoning_summary_text.delta',
  'response.reasoning_summary_text.done',
  'response.reasoning_text.delta',
  'response.reasoning_text.done',
  'response.web_search_call.in_progress',
  'response.web_search_call.searching',
  'response.web_search_call.completed',
  'response.file_search_call.in_progress',
  'response.file_search_call.searching',
  'response.file_search_call.completed',
  'response.code_interpreter_call.in_progress',
  'response.code_interpreter_call.interpreting',
  'response.code_interpreter_call.completed',
  'response.code_interpreter_call_code.delta',
  'response.code_interpreter_call_code.done',
  'response.image_generation_call.in_progress',
  'response.image_generation_call.generating',
  'response.image_generation_call.partial_image',
  'response.image_generation_call.completed',
  'response.mcp_call.in_progress',
  'response.mcp_call.completed',
  'response.mcp_call.failed',
  'response.mcp_list_tools.in_progress',
  'response.mcp_list_tools.completed',
  'response.mcp_list_tools.failed',
  'response.audio.delta',
  'response.audio.done',
  'response.audio.transcript.delta',
  'response.audio.transcript.done',
  'keepalive',
]);

/** Codex CLI and its IDE extensions send `originator: codex_…` (older builds `codex-…`). */
export function isCodexOriginator(originator: string | string[] | undefined): boolean {
  return typeof originator === 'string' && /^codex[_-]/i.test(originator);
}

/** Backend metadata sent before any output (Codex reads it): part of the pre-output phase. */
const PRE_OUTPUT_CODEX = new Set(['response.metadata']);

/**
 * Codex-backend events on a stream: for a client that is not Codex, an event whose type is outside
 * the union is dropped. `response.metadata` and dropped events are marked `hold`, so they neither
 * reach the client early nor end the core's pre-output hold (which keeps failover possible until
 * the first content event). The `event:` line names the type; else the data does.
 */
export function codexStreamEvent(ev: SseEvent, codexClient: boolean): SseEvent {
  const type = eventType(ev);
  if (type === undefined) return ev; // malformed or typeless: the Responses plugin decides
  if (PRE_OUTPUT_CODEX.has(type)) ev.hold = true;
  if (!codexClient && !OFFICIAL_EVENT_TYPES.has(type)) {
    ev.drop = true;
    ev.hold = true;
  }
  return ev;
}

function eventType(ev: SseEvent): string | undefined {
  if (ev.event !== undefined) return ev.event;
  if (ev.data.length === 0) return undefined;
  try {
    const t = (JSON.parse(ev.data) as { type?: unknown } | null)?.type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}
