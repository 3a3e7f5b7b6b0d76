/**
 * A real Prometheus (Debian package) scraping a real gateway on loopback: the message count
 * it stores is the number of messages sent, the alert rules load and evaluate without error,
 * every dashboard query runs, and a failed policy reload raises PosternPolicyReloadFailed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHIPPED_POLICIES } from '../harness/gateway.ts';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';
import { ALERTS_FILE, dashboardQueries, readAlertRules, readDashboard } from './helpers/deploy-files.ts';
import { startPrometheus, type PrometheusServer, type Sample } from './helpers/prometheus.ts';
import { pollUntil } from './helpers/tools.ts';

/** Grafana's variables, as Grafana substitutes them before sending a query. */
function asGrafanaSends(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m').replaceAll('$__interval', '15s').replaceAll('$instance', '.*');
}

const valueOf = (samples: Sample[]): number | undefined => (samples.length === 1 ? Number(samples[0]!.value[1]) : undefined);

describe('a real Prometheus scraping a real gateway', () => {
  let w: World;
  let prom: PrometheusServer;
  let target: string;
  before(async () => {
    // A copy of the shipped policy in a folder of its own, so the test can break it.
    const defaults = fs.readFileSync(path.join(SHIPPED_POLICIES, '00-defaults.yaml'), 'utf8');
    w = await startWorld({ policies: { '00-defaults.yaml': defaults } });
    target = `127.0.0.1:${w.gw.httpPort}`;
    prom = await startPrometheus({ job: 'postern', targets: [target], ruleFiles: [ALERTS_FILE] });
  });
  after(async () => {
    await prom?.close();
    await w?.close();
  });

  it('stores postern_messages_total as sent: 3 messages, 2 accepted and 1 rejected', async () => {
    const good = { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) };
    assert.equal((await sendMail(w.gw.port, good)).data?.code, 250);
    assert.equal((await sendMail(w.gw.port, { ...good, message: message({ from: 'bob@good.example' }) })).data?.code, 250);
    assert.equal((await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) })).data?.code, 550);

    let last: Sample[] = [];
    const total = await pollUntil(async () => {
      last = await prom.query('sum(postern_messages_total)');
      return valueOf(last) === 3 ? 3 : undefined;
    }, { timeoutMs: 15_000, what: () => `sum(postern_messages_total) = ${JSON.stringify(last)}; prometheus log: ${prom.log()}` });
    assert.equal(total, 3);

    const byAction = await prom.query(`sum by (action) (postern_messages_total{job="postern",instance="${target}"})`);
    assert.deepEqual(Object.fromEntries(byAction.map((s) => [s.metric.action, Number(s.value[1])])), { accept: 2, reject: 1 });
    const up = await prom.query(`up{job="postern",instance="${target}"}`);
    assert.equal(valueOf(up), 1);
  });

  it('loads every alert rule of deploy/prometheus/alerts.yml and evaluates each without error', async () => {
    const expected = readAlertRules().map((r) => r.alert).sort();
    const rules = await pollUntil(async () => {
      const r = await prom.rules();
      return r.length === expected.length && r.every((x) => x.health !== 'unknown') ? r : undefined;
    }, { timeoutMs: 10_000, what: () => `rules not all evaluated; prometheus log: ${prom.log()}` });
    assert.deepEqual(rules.map((r) => r.name).sort(), expected);
    for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? ''}`);
  });

  it('runs every query of the Grafana dashboard; the main panels have data', async () => {
    const d = readDashboard();
    const queries = dashboardQueries(d);
    assert.ok(queries.length >= 30);
    for (const q of queries) {
      const expr = q.startsWith('label_values(') ? q.replace(/^label_values\((.+), \w+\)$/, '$1') : asGrafanaSends(q);
      await assert.doesNotReject(prom.query(expr), `dashboard query fails in Prometheus: ${expr}`);
    }
    const panel = (title: string): string => asGrafanaSends(d.panels.find((p) => p.title === title)!.targets![0]!.expr);
    // rate() needs two scrapes of a series inside its window.
    const throughput = await pollUntil(async () => {
      const r = await prom.query(panel('Throughput by action'));
      return r.length > 0 ? r : undefined;
    }, { timeoutMs: 10_000, what: () => 'no throughput data' });
    assert.deepEqual(throughput.map((s) => s.metric.action).sort(), ['accept', 'reject']);
    const methods = new Set((await prom.query(panel('Authentication results'))).map((s) => s.metric.method));
    assert.deepEqual([...methods].sort(), ['arc', 'dkim', 'dmarc', 'spf']);
    const top = await prom.query(panel('Top rules'));
    // Messages that no rule decided (rule="") are not a rule; the value is 0 here, as increase()
    // cannot see the first sample of a series that appeared at 1.
    assert.deepEqual(top.map((s) => [s.metric.rule, s.metric.action]), [['dmarc-reject', 'reject']]);
  });

  it('a failed policy reload fires PosternPolicyReloadFailed for this instance, and no other alert is even pending', async () => {
    fs.writeFileSync(path.join(w.gw.policyDir, '10-broken.yaml'), 'rules:\n  - name: broken\n    match: {}\n    action: acept\n');
    await assert.rejects(w.gw.gateway.reload(), /10-broken\.yaml:4:/);
    const firing = await pollUntil(async () => {
      const alerts = (await prom.alerts()).filter((a) => a.state === 'firing');
      return alerts.length > 0 ? alerts : undefined;
    }, { timeoutMs: 15_000, what: () => `no alert firing; prometheus log: ${prom.log()}` });
    assert.deepEqual(firing.map((a) => [a.labels.alertname, a.labels.instance, a.labels.severity]), [['PosternPolicyReloadFailed', target, 'warning']]);
    // Not even pending: a healthy gateway (backend up, store up, no DNS trouble) trips nothing else.
    assert.deepEqual((await prom.alerts()).map((a) => a.labels.alertname), ['PosternPolicyReloadFailed']);
    assert.equal(firing[0]!.annotations.summary, `Postern ${target} refused a policy reload`);
  });
});
