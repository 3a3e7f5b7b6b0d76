/**
 * /metrics of a node with workers: every worker's registry and the primary's own, summed by
 * prom-client's cluster aggregation (AggregatorRegistry.aggregate), each metric by its
 * `aggregator`: counters, histograms and most gauges add up (sessions in flight, open
 * connections, process memory); postern_store_up takes the minimum (0 if any worker answers
 * from its local fallback). Reloads are the primary's business (it validates before any worker
 * changes): the reload counter and the rule count are the primary's alone, as are the counts
 * of workers and restarts.
 */
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/** Series the primary owns; the workers' copies are left out of the sum. */
const PRIMARY_OWNED: ReadonlySet<string> = new Set([
  'postern_policy_reloads_total', 'postern_policy_rules', 'postern_workers', 'postern_worker_restarts_total',
]);

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

export async function aggregateMetrics(primary: Registry, workers: readonly MetricsJson[]): Promise<Registry> {
  const own = await primary.getMetricsAsJSON();
  const theirs = workers.map((list) => list.filter((m) => !PRIMARY_OWNED.has(m.name)));
  return AggregatorRegistry.aggregate([own, ...theirs]);
}
