/**
 * No dead panels and no dead alerts: every Postern metric the Grafana dashboard or the alert
 * rules mention is declared by a real gateway's /metrics, after real traffic. And the reverse:
 * every metric of the catalogue has a panel, so a new metric cannot go unseen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';
import { dashboardQueries, exposedNames, jsonStrings, metricNamesIn, readAlertRules, readDashboard } from './helpers/deploy-files.ts';

/** Referenced names that no exposed family provides. */
function undeclared(referenced: Iterable<string>, exposed: Map<string, string>): string[] {
  return [...referenced].filter((n) => !exposed.has(n)).sort();
}

/** Node's default process metrics (collectDefaultMetrics with our prefix), not our catalogue. */
const isDefaultMetric = (name: string): boolean => /^postern_(process|nodejs)_/.test(name);

describe('metric names in deploy/ against a real /metrics', () => {
  let w: World;
  let exposed: Map<string, string>;
  before(async () => {
    w = await startWorld();
    // Traffic first, so the labelled families carry samples as well as declarations.
    const accepted = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
    const rejected = await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) });
    assert.equal(accepted.data?.code, 250);
    assert.equal(rejected.data?.code, 550);
    const res = await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    exposed = exposedNames(text);
    assert.match(text, /^postern_messages_total\{action="accept",rule="",reason="default"\} 1$/m);
    assert.match(text, /^postern_relay_duration_seconds_bucket\{le="\+Inf",outcome="delivered"\} 1$/m);
  });
  after(() => w.close());

  it('the checker itself flags a name the gateway does not declare, and accepts histogram series', () => {
    assert.deepEqual(undeclared(['postern_no_such_metric', 'postern_relay_duration_seconds_bucket', 'postern_relay_duration_seconds_count'], exposed), ['postern_no_such_metric']);
    assert.deepEqual([...metricNamesIn(['rate(postern_a_total[5m]) / postern_b', 'postern_ alone'])], ['postern_a_total', 'postern_b']);
  });

  it('every metric in the dashboard (queries, variables, descriptions) exists', () => {
    const d = readDashboard();
    const names = metricNamesIn(jsonStrings(d));
    assert.ok(names.size >= 15, `expected the dashboard to use most of the catalogue, found ${[...names].join(', ')}`);
    assert.ok(metricNamesIn(dashboardQueries(d)).has('postern_messages_total'));
    assert.deepEqual(undeclared(names, exposed), [], 'dashboard panels on metrics the gateway does not have');
  });

  it('every metric in the alert rules exists', () => {
    const names = metricNamesIn(readAlertRules().map((r) => r.expr));
    assert.ok(names.size >= 5, `found only ${[...names].join(', ')}`);
    assert.deepEqual(undeclared(names, exposed), [], 'alert rules on metrics the gateway does not have');
  });

  it('every metric of the catalogue has a panel in the dashboard', () => {
    const used = metricNamesIn(dashboardQueries(readDashboard()));
    const families = [...exposed].filter(([name, type]) => !isDefaultMetric(name)
      && !(type === 'histogram' && /_(bucket|sum|count)$/.test(name) && exposed.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram'));
    assert.ok(families.length >= 10, `catalogue families: ${families.map(([n]) => n).join(', ')}`);
    const unshown = families
      .filter(([name, type]) => type === 'histogram' ? !['_bucket', '_sum', '_count'].some((s) => used.has(name + s)) : !used.has(name))
      .map(([name]) => name);
    assert.deepEqual(unshown, [], 'metrics without a panel in deploy/grafana/postern.json');
  });
});
