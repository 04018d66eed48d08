/**
 * Metrics across a reload: an added upstream gets its own series at once, and the models it lists
 * are labels of their own even once clients have used up the cap on other model names; a removed
 * upstream leaves the state gauge, and a change to the `metrics` section (its listener
 * is bound once) is refused with nothing changed.
 */
import assert from 'node:assert/strict';
import {
  allCompleted,
  client,
  ConfigDir,
  OLD_KEY,
  openaiUpstream,
  openStream,
  reloadConfig,
  startFileGateway,
  startHoldingUpstream,
  type FileGateway,
  type HoldingUpstream,
} from '../helpers/reload.js';
import { scrape } from '../helpers/metrics.js';

const METRICS = { enabled: true, listen: '127.0.0.1:0' };

describe('reload: metrics', function () {
  this.timeout(30_000);
  let dir: ConfigDir;
  let a: HoldingUpstream;
  let b: HoldingUpstream;
  let g: FileGateway | undefined;

  beforeEach(async () => {
    dir = new ConfigDir();
    a = await startHoldingUpstream();
    b = await startHoldingUpstream();
    a.holding = false;
    b.holding = false;
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await a.close();
    await b.close();
    dir.remove();
  });

  it('an added upstream and its models have series of their own at once; a removed one leaves the state gauge', async () => {
    dir.write(reloadConfig({ metrics: METRICS, upstreams: [openaiUpstream('alpha', a)] }));
    g = await startFileGateway(dir.file);
    const url = g.gw.metricsUrl! + '/metrics';
    const before = await scrape(url);
    assert.equal(before.value('tapgate_upstream_state', { upstream: 'alpha', state: 'ok' }), 1);
    // Clients name 51 models nobody configured: the first 50 names seen get labels, the rest are
    // `other`. The upstream answers each with `gpt-test`, a substitution whose label shares that
    // budget: when it took one of the 50, one more client name is `other`.
    const c = client(g.url, OLD_KEY);
    const names = Array.from({ length: 51 }, (_, i) => `client-model-${i}`);
    assert.equal(await allCompleted(names.map((m) => openStream(c, m))), 51);
    const capped = await scrape(url);
    const servedLabel =
      capped.samples('tapgate_model_substitutions_total', { served: 'gpt-test' }).length > 0;
    const labelled = new Set(
      capped
        .samples('tapgate_requests_total')
        .map((x) => x.labels.model)
        .filter((m) => m?.startsWith('client-model-')),
    );
    assert.equal(labelled.size + (servedLabel ? 1 : 0), 50, 'the 50 labels are used up');
    assert.equal(capped.value('tapgate_requests_total', { model: 'other' }), 51 - labelled.size);

    dir.write(
      reloadConfig({ metrics: METRICS, upstreams: [openaiUpstream('bravo', b, { models: ['gpt-new'] })] }),
    );
    const result = await g.gw.reload();
    assert.equal(result.status, 'applied', result.errors.join('; '));
    assert.equal(await allCompleted([openStream(c, 'gpt-new')]), 1);
    assert.equal(b.requests.length, 1);

    const after = await scrape(url);
    assert.equal(after.value('tapgate_upstream_state', { upstream: 'bravo', state: 'ok' }), 1);
    assert.deepEqual(after.samples('tapgate_upstream_state', { upstream: 'alpha' }), []);
    assert.equal(after.value('tapgate_requests_total', { upstream: 'bravo', outcome: 'ok' }), 1);
    // A model the new config lists is not lumped into `other`, however many names clients used.
    assert.equal(after.value('tapgate_requests_total', { model: 'gpt-new', upstream: 'bravo' }), 1);
    assert.equal(after.value('tapgate_requests_total', { model: 'other' }), 51 - labelled.size);
  });

  it('a change to the metrics section is refused: the listener keeps serving as it was', async () => {
    dir.write(reloadConfig({ metrics: METRICS, upstreams: [openaiUpstream('alpha', a)] }));
    g = await startFileGateway(dir.file);
    const url = g.gw.metricsUrl! + '/metrics';
    dir.write(
      reloadConfig({ metrics: { ...METRICS, path: '/prometheus' }, upstreams: [openaiUpstream('alpha', a)] }),
    );
    const result = await g.gw.reload();
    assert.equal(result.status, 'refused');
    assert.match(result.errors.join('\n'), /metrics\.path: changing it needs a restart/);
    assert.equal((await scrape(url)).value('tapgate_upstream_state', { upstream: 'alpha', state: 'ok' }), 1);
  });
});
