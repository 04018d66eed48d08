/**
 * Silent model substitution: an answer whose Response names another model than the one requested
 * (a downgrade the client would not notice). Checked once per request, on the first stream event
 * that carries the Response (`response.created`) or on a JSON answer's `model`; logged at warn (at
 * most once a minute, with how many since) and counted in `tapgate_model_substitutions_total`.
 * The requested name plus a version suffix (`gpt-4o` → `gpt-4o-2024-08-06`) is the same model.
 */
import { Counter } from 'prom-client';
import {
  createStateKey,
  Occasional,
  truncate,
  type Logger,
  type PluginMetrics,
  type RequestContext,
  type SseEvent,
} from '../../core/index.js';
import { stringMemberInBytes, stringMemberInText } from './json-member.js';

/** Events that carry the Response object, as a stream's first events. */
const ANNOUNCES_RESPONSE = new Set(['response.created', 'response.in_progress', 'response.queued']);
/** A dated snapshot of the requested model: `-2024-08-06`, `-20240806`, `-0613`. */
const VERSION_SUFFIX = /^-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$/;
const LOG_EVERY_MS = 60_000;

/** The request's answer was checked already (a later attempt or event is not checked again). */
const CHECKED = createStateKey<{ done: boolean }>('responses-routes.model-check', () => ({ done: false }));

/** Whether `served` is another model than `requested`, not the same one or a dated snapshot of it. */
export function isSubstitution(requested: string, served: string): boolean {
  if (served === requested) return false;
  return !(served.startsWith(requested) && VERSION_SUFFIX.test(served.slice(requested.length)));
}

interface Substitution {
  reqId: string;
  requested: string;
  served: string;
}

export class ModelCheck {
  private readonly counter: Counter<'requested' | 'served'> | undefined;
  private readonly log: Occasional<Substitution>;

  constructor(
    logger: Logger,
    private readonly metrics: PluginMetrics,
  ) {
    this.counter = metrics.enabled
      ? new Counter({
          name: 'tapgate_model_substitutions_total',
          help: 'Answers whose Response names another model than the one requested (a dated snapshot of it does not count)',
          labelNames: ['requested', 'served'],
          registers: [metrics.registry],
        })
      : undefined;
    this.log = new Occasional(LOG_EVERY_MS, (count, latest) =>
      logger.warn(
        { ...latest, occurrences: count },
        'model substituted: the upstream answered with another model than the one requested',
      ),
    );
  }

  /** A stream event (also of a stream collected into a JSON answer). */
  onEvent(ev: SseEvent, ctx: RequestContext): void {
    // Dropped events count too: a stream collected into a JSON answer drops every event.
    if (ctx.model === undefined || ev.fail !== undefined) return;
    const checked = ctx.state(CHECKED);
    if (checked.done) return;
    const type = ev.event ?? stringMemberInText(ev.data, 'type', 1);
    if (type === undefined || !ANNOUNCES_RESPONSE.has(type)) return;
    const served = stringMemberInText(ev.data, 'model', 2);
    if (served === undefined) return;
    checked.done = true;
    this.compare(ctx, ctx.model, served);
  }

  /** A complete JSON answer. */
  onBody(ctx: RequestContext, chunks: readonly Buffer[]): void {
    if (ctx.model === undefined || chunks.length === 0) return;
    const checked = ctx.state(CHECKED);
    if (checked.done) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[]);
    const served = stringMemberInBytes(body, 'model', 1);
    if (served === undefined) return;
    checked.done = true;
    this.compare(ctx, ctx.model, served);
  }

  private compare(ctx: RequestContext, requested: string, served: string): void {
    if (!isSubstitution(requested, served)) return;
    this.counter?.inc({
      requested: this.metrics.modelLabel(requested),
      served: this.metrics.modelLabel(served),
    });
    // Names cut for the log: the requested one is whatever the client sent.
    this.log.hit({ reqId: ctx.id, requested: truncate(requested), served: truncate(served) });
  }
}
