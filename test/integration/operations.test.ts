/**
 * What operators see: /metrics counters moved by exactly the traffic sent, /healthz and
 * /readyz, and the all-or-nothing policy reload.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Value of one series, 0 when absent. `labels` must list every label in exposition order. */
function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('metrics and health', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(() => w.close());

  it('counts messages by action, rule and reason, replies by class, and auth results', async () => {
    const before = await scrape(w.gw.httpPort!);
    await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
    await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) });
    await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@elsewhere.example'], message: message({ from: 'bob@good.example' }) });
    const after = await scrape(w.gw.httpPort!);
    const delta = (s: string): number => value(after, s) - value(before, s);
    assert.equal(delta('postern_messages_total{action="accept",rule="",reason="default"}'), 1);
    assert.equal(delta('postern_messages_total{action="reject",rule="dmarc-reject",reason="dmarc-policy"}'), 1);
    assert.equal(delta('postern_smtp_replies_total{stage="rcpt",class="5xx"}'), 1);
    assert.equal(delta('postern_smtp_replies_total{stage="data",class="2xx"}'), 1);
    assert.equal(delta('postern_smtp_replies_total{stage="data",class="5xx"}'), 1);
    assert.equal(delta('postern_auth_results_total{method="dmarc",result="pass"}'), 1);
    assert.equal(delta('postern_auth_results_total{method="dmarc",result="fail"}'), 1);
    assert.equal(delta('postern_connections_total{outcome="accepted",reason="ok"}'), 3);
    assert.equal(delta('postern_relay_duration_seconds_count{outcome="delivered"}'), 1);
    assert.ok(value(after, 'postern_dns_lookups_total{type="TXT",outcome="ok"}') > 0);
    assert.match(after, /^postern_process_cpu_seconds_total /m, 'default process metrics with our prefix');
    assert.doesNotMatch(after, /good\.example|127\.0\.0\.1/, 'no domain or address as a label value');
  });

  it('/healthz is ok; /readyz reports each check and turns 503 naming the backend when it is down', async () => {
    const health = await fetch(`http://127.0.0.1:${w.gw.httpPort}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`http://127.0.0.1:${w.gw.httpPort}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { policies: { ok: true }, backend: { ok: true }, dns: { ok: true } } });

    const down = await startWorld();
    try {
      await down.sink.close();
      const r = await fetch(`http://127.0.0.1:${down.gw.httpPort}/readyz`);
      assert.equal(r.status, 503);
      const body = await r.json() as { status: string; checks: { backend: { ok: boolean; error: string } } };
      assert.equal(body.status, 'not ready');
      assert.equal(body.checks.backend.ok, false);
      assert.match(body.checks.backend.error, /ECONNREFUSED|refused|connect/i);
    } finally {
      await down.gw.close();
      await down.dns.close();
    }
  });
});

describe('policy reload', () => {
  it('a broken file is refused, the old policy stays in force, the failure is counted; a fixed file is taken', async () => {
    const rejectAll = 'rules:\n  - name: reject-all\n    match: {}\n    action: reject\n';
    const w = await startWorld({ policies: { '10-main.yaml': rejectAll } });
    try {
      const file = path.join(w.gw.policyDir, '10-main.yaml');
      fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: acept\n');
      await assert.rejects(w.gw.gateway.reload(), /10-main\.yaml:4:\d+: .*action/);
      const r1 = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
      assert.equal(r1.mail.code, 550, 'old policy (reject-all) still enforced, at MAIL FROM already');
      const metrics = await scrape(w.gw.httpPort!);
      assert.equal(value(metrics, 'postern_policy_reloads_total{outcome="failed"}'), 1);
      assert.ok(w.gw.logs.some((l) => l.level === 50 && /reload failed/.test(String(l.msg))));

      fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: accept\n');
      await w.gw.gateway.reload();
      const r2 = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
      assert.equal(r2.data?.code, 250);
      assert.equal(value(await scrape(w.gw.httpPort!), 'postern_policy_reloads_total{outcome="ok"}'), 2);
    } finally {
      await w.close();
    }
  });
});
