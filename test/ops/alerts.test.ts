/**
 * The Prometheus files pass Prometheus's own checker (promtool, Debian package `prometheus`,
 * installed by `make test`'s test-deps), the alert rules behave as their unit tests say
 * (promtool test rules), and every alert carries a summary, a description and a runbook that
 * exists in deploy/README.md.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { headingAnchors, readAlertRules } from './helpers/deploy-files.ts';
import { DEPLOY, run } from './helpers/tools.ts';

const PROM_DIR = path.join(DEPLOY, 'prometheus');

describe('deploy/prometheus with promtool', () => {
  it('promtool check rules alerts.yml', async () => {
    const r = await run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: PROM_DIR });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${readAlertRules().length} rules found`));
  });

  it('promtool check config prometheus.yml (its rule_files resolve to alerts.yml)', async () => {
    const r = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: PROM_DIR });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: 1 rule files found/);
    assert.match(r.stdout, /Checking alerts\.yml\n {2}SUCCESS: \d+ rules found/);
  });

  it('promtool test rules alerts.test.yml: each alert fires when it should and stays quiet otherwise', async () => {
    const r = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: PROM_DIR });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
    // Every alert has at least one unit test.
    const tests = fs.readFileSync(path.join(PROM_DIR, 'alerts.test.yml'), 'utf8');
    for (const rule of readAlertRules()) assert.match(tests, new RegExp(`alertname: ${rule.alert}\\b`), `no unit test for ${rule.alert}`);
  });

  it('promtool rejects a broken rule file (the check is not a no-op)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-alerts-'));
    try {
      fs.writeFileSync(path.join(dir, 'bad.yml'), 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(postern_messages_total[5m) > 0\n');
      const r = await run('promtool', ['check', 'rules', 'bad.yml'], { cwd: dir });
      assert.equal(r.code, 1);
      assert.match(r.stdout + r.stderr, /FAILED/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('alert annotations and runbooks', () => {
  const rules = readAlertRules();
  const readme = fs.readFileSync(path.join(DEPLOY, 'README.md'), 'utf8');
  const anchors = headingAnchors(readme);

  it('has the alerts the issue asks for', () => {
    const names = rules.map((r) => r.alert);
    for (const n of ['PosternDown', 'PosternBackendDown', 'PosternRelayErrorRatio', 'PosternRejectSpike', 'PosternDnsErrors', 'PosternDnsDown', 'PosternPolicyReloadFailed']) {
      assert.ok(names.includes(n), `missing alert ${n}`);
    }
    assert.equal(new Set(names).size, names.length, 'duplicate alert names');
  });

  it('every alert has a severity, a summary, a description and a runbook_url to its section of deploy/README.md', () => {
    assert.ok(anchors.has('alerts-and-runbooks'), 'deploy/README.md has no "Alerts and runbooks" section');
    for (const r of rules) {
      assert.match(r.labels?.severity ?? '', /^(critical|warning)$/, r.alert);
      assert.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: summary`);
      assert.ok((r.annotations?.description ?? '').length > 20, `${r.alert}: description`);
      assert.equal(r.annotations?.runbook_url, `deploy/README.md#${r.alert.toLowerCase()}`, r.alert);
      assert.ok(anchors.has(r.alert.toLowerCase()), `deploy/README.md has no "### ${r.alert}" runbook`);
    }
  });

  it('every runbook in deploy/README.md belongs to an alert that exists', () => {
    const start = readme.indexOf('## Alerts and runbooks');
    const end = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, end < 0 ? undefined : end);
    const runbooks = [...section.matchAll(/^### (Postern\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(runbooks.sort(), rules.map((r) => r.alert).sort());
  });
});
