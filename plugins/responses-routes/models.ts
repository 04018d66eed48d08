/** `GET /v1/models`: the models the enabled upstreams serve, in OpenAI's list shape. */
import type { UpstreamPool } from '../../core/index.js';

export function listModels(pool: UpstreamPool): {
  object: 'list';
  data: { id: string; object: 'model'; created: number; owned_by: string }[];
} {
  const seen = new Map<string, string>();
  for (const u of pool.upstreams) {
    if (pool.state.disabled(u.name) !== undefined) continue;
    for (const m of u.models) if (!seen.has(m)) seen.set(m, u.type);
  }
  return {
    object: 'list',
    data: [...seen].map(([id, owner]) => ({ id, object: 'model', created: 0, owned_by: owner })),
  };
}
