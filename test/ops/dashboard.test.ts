/**
 * The Grafana dashboard's shape: importable (schema 39, a data source variable every panel
 * uses), consistent (unique ids, inside the 24-column grid, no overlap) and complete (the
 * panels an SRE looks for). Its queries are run against a real Prometheus in prometheus.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dashboardQueries, readDashboard } from './helpers/deploy-files.ts';

describe('deploy/grafana/postern.json', () => {
  const d = readDashboard();
  const panels = d.panels.filter((p) => p.type !== 'row');

  it('is a schema 39 dashboard with a Prometheus data source variable and an instance filter', () => {
    assert.equal(d.schemaVersion, 39);
    assert.equal(d.uid, 'postern');
    const ds = d.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    assert.deepEqual({ type: ds?.type, query: ds?.query }, { type: 'datasource', query: 'prometheus' });
    const instance = d.templating.list.find((v) => v.name === 'instance');
    assert.equal(instance?.datasource?.uid, '${DS_PROMETHEUS}');
    for (const q of dashboardQueries(d).filter((e) => /\bpostern_/.test(e) && !e.startsWith('label_values'))) {
      assert.match(q, /instance=~"\$instance"/, `query without the instance filter: ${q}`);
    }
  });

  it('every panel and every query uses the ${DS_PROMETHEUS} data source', () => {
    assert.ok(panels.length >= 20);
    for (const p of panels) {
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, p.title);
      assert.ok((p.targets ?? []).length > 0, `${p.title}: no query`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', `${p.title} ${t.refId}`);
    }
  });

  it('has unique panel ids and a layout inside 24 columns without overlapping panels', () => {
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Map<string, string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: x=${x} w=${w}`);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        const other = cells.get(`${i},${j}`);
        assert.equal(other, undefined, `${p.title} overlaps ${other}`);
        cells.set(`${i},${j}`, p.title);
      }
    }
  });

  it('has the panels operators look for, on the right metrics', () => {
    const expr = (title: string): string => {
      const p = panels.find((q) => q.title === title);
      assert.ok(p, `no panel "${title}"`);
      return (p.targets ?? []).map((t) => t.expr).join('\n');
    };
    assert.match(expr('Throughput by action'), /sum by \(action\) \(rate\(postern_messages_total/);
    assert.match(expr('Authentication results'), /sum by \(method, result\) \(rate\(postern_auth_results_total/);
    assert.match(expr('Top rules'), /topk\(10, sum by \(rule, action\)/);
    assert.match(expr('Monitor mode: would have'), /postern_monitor_would_have_total/);
    assert.match(expr('Relay latency p50 / p99'), /histogram_quantile\(0\.5, .*postern_relay_duration_seconds_bucket[\s\S]*histogram_quantile\(0\.99, /);
    assert.match(expr('Backend errors'), /sum by \(kind\) \(rate\(postern_relay_errors_total/);
    assert.match(expr('DNS errors and timeouts'), /outcome="timeout"/);
    assert.match(expr('DNS latency p50 / p99 by type'), /sum by \(le, type\) \(rate\(postern_dns_lookup_duration_seconds_bucket/);
    assert.match(expr('Replies by class'), /postern_smtp_replies_total/);
    assert.match(expr('Sessions in flight'), /postern_sessions_in_flight/);
    assert.match(expr('Connections accepted and refused'), /sum by \(outcome, reason\) \(rate\(postern_connections_total/);
    assert.match(expr('Policy reloads and rules'), /postern_policy_reloads_total[\s\S]*postern_policy_rules/);
    assert.match(expr('Rate-limit hits by limiter'), /sum by \(limiter\) \(rate\(postern_rate_limit_hits_total/);
    assert.match(expr('Redis up'), /postern_store_up/);
    assert.match(expr('Redis errors by operation'), /postern_store_errors_total/);
    assert.match(expr('CPU'), /postern_process_cpu_seconds_total/);
    assert.match(expr('Memory'), /postern_process_resident_memory_bytes/);
  });
});
