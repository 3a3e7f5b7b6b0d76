/**
 * DMARC report metrics of a node with workers (src/cluster/metrics.ts): the pending gauge is
 * set by whichever worker ran the reports last, so the node reports the largest value, not a
 * sum that counts the same jobs once per worker.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { aggregateMetrics } from '../../../src/cluster/metrics.ts';
import { reportMetrics } from '../../../src/reports/metrics.ts';

describe('DMARC report metrics across workers', () => {
  it('postern_dmarc_reports_pending is the largest worker value; counters still add up', async () => {
    const workers = [3, 2, 0].map((pending) => {
      const registry = new Registry();
      const m = reportMetrics([registry]);
      m.pending.set(pending);
      m.rows.inc(10);
      return registry;
    });
    const node = await aggregateMetrics(new Registry(), await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    const text = await node.metrics();
    assert.match(text, /^postern_dmarc_reports_pending 3$/m);
    assert.match(text, /^postern_dmarc_rows_collected_total 30$/m);
  });
});
