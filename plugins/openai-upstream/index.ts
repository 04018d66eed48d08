/** Upstream type `openai`: an OpenAI-compatible API with an API key. */
import { z } from 'zod';
import { inject, injectable, TOKENS } from '../../core/di.js';
import type { Gateway } from '../../core/gateway.js';
import type { TapgatePlugin } from '../../core/plugin-api.js';
import { Stage } from '../../core/stages.js';

const NAME = 'openai-upstream';

export const openaiUpstreamSchema = z.object({
  baseUrl: z
    .url({ protocol: /^https?$/, error: 'expected an http(s) URL' })
    .default('https://api.openai.com/v1'),
  /** Empty (an unset `${OPENAI_API_KEY:-}`): the upstream starts disabled, saying why. */
  apiKey: z.string(),
  /** Sent as OpenAI-Organization / OpenAI-Project when set. */
  organization: z.string().optional(),
  project: z.string().optional(),
});

@injectable()
export default class OpenAIUpstreamPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: z.strictObject({}) };

  constructor(@inject(TOKENS.PluginOptions) _options: Record<string, never>) {}

  apply(gateway: Gateway): void {
    gateway.upstreamTypes.register({
      type: 'openai',
      schema: openaiUpstreamSchema,
      // Precompute the header once per upstream, not per request.
      init: (upstream) => ({ authorization: `Bearer ${String(upstream.settings.apiKey)}` }),
      check: (upstream) =>
        upstream.settings.apiKey === ''
          ? 'no API key (apiKey is empty: is its environment variable set?)'
          : undefined,
    });
    gateway.hooks.prepareUpstreamRequest.tap(
      { name: NAME, stage: Stage.DEFAULT },
      (outgoing, _ctx, upstream) => {
        if (upstream.type !== 'openai') return outgoing;
        const h = outgoing.headers;
        h.authorization = (upstream.state as { authorization: string }).authorization;
        const s = upstream.settings;
        if (typeof s.organization === 'string') h['openai-organization'] = s.organization;
        if (typeof s.project === 'string') h['openai-project'] = s.project;
        return outgoing;
      },
    );
  }
}
