/** Upstream type `openai`: an OpenAI-compatible API with an API key. */
import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import {
  headerToken,
  Stage,
  unsafeHeaderChar,
  type PluginContext,
  type TapgatePlugin,
} from '../../core/index.js';
import { withoutChatgptOnlyFields } from './unsupported-fields.js';

const NAME = 'openai-upstream';

export const openaiUpstreamSchema = z.object({
  baseUrl: z
    .url({ protocol: /^https?$/, error: 'expected an http(s) URL' })
    .default('https://api.openai.com/v1'),
  /** Empty (an unset `${OPENAI_API_KEY:-}`): the upstream starts disabled, saying why. */
  apiKey: headerToken(),
  /** Sent as OpenAI-Organization / OpenAI-Project when set. */
  organization: headerToken().optional(),
  project: headerToken().optional(),
  /**
   * The gateway owns the account, so a client's own OpenAI-Organization / OpenAI-Project headers are
   * dropped. `true` lets them through when this upstream sets none itself.
   */
  passBillingHeaders: z.boolean().default(false),
});

export default class OpenAIUpstreamPlugin implements TapgatePlugin {
  static readonly meta = { name: NAME, options: z.strictObject({}) };

  /** No options of its own (its upstreams' keys reload with the upstreams): nothing to apply. */
  reload(): void {}

  apply(gateway: PluginContext): void {
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
      (outgoing, ctx, upstream) => {
        if (upstream.type !== 'openai') return outgoing;
        const h = outgoing.headers;
        h.authorization = (upstream.state as { authorization: string }).authorization;
        const s = upstream.settings;
        if (typeof s.organization === 'string') h['openai-organization'] = s.organization;
        if (typeof s.project === 'string') h['openai-project'] = s.project;
        if (s.passBillingHeaders === true) passBilling(h, ctx.req.headers);
        // A body still encoded (zstd on Node 20) was not parsed: it goes as sent.
        if (h['content-encoding'] === undefined) {
          const body = withoutChatgptOnlyFields(outgoing.body, ctx.json);
          if (body !== undefined) outgoing.body = body;
        }
        return outgoing;
      },
    );
  }
}

/** The client's billing headers, where the upstream set none and they are header-safe values. */
function passBilling(out: Record<string, string>, from: IncomingHttpHeaders): void {
  for (const name of ['openai-organization', 'openai-project']) {
    const v = from[name];
    if (out[name] === undefined && typeof v === 'string' && unsafeHeaderChar(v, false) === undefined)
      out[name] = v;
  }
}
