/**
 * `postern reports` and `check-config` for reporting, as an operator runs them (child
 * processes): usage and configuration errors exit 2 with a clear message, never a stack
 * trace; check-config refuses what serve could not start with; the README's example loads.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { startChildGateway } from '../harness/child-gateway.ts';
import { dkimKey } from '../harness/mail.ts';
import { runCli } from '../harness/reports.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('postern reports CLI and check-config', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-reports-cli-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const enabled = { POSTERN_DOMAINS: 'example.net', POSTERN_REPORTS_DMARC_ENABLED: 'true', POSTERN_REPORTS_DMARC_ORG_NAME: 'Org', POSTERN_REPORTS_DMARC_EMAIL: 'r@example.net' };

  it('--help prints the usage; a missing or unknown action is a usage error (2)', async () => {
    const help = await runCli(['reports', '--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: postern reports aggregate \[--out DIR\] \[--config FILE\]\n {7}postern reports send \[--now\] \[--config FILE\]/);
    for (const args of [['reports'], ['reports', 'publish'], ['reports', 'aggregate', '--now'], ['reports', 'send', '--bogus']]) {
      const r = await runCli(args, {});
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^postern reports: .+\n\nusage: postern reports/, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('refuses to run when reporting is off, and names the key', async () => {
    const r = await runCli(['reports', 'send'], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /reports\.dmarc\.enabled is false/);
  });

  it('check-config: enabled without orgName/email, a half signing setup or a bad key file is refused with the key', async () => {
    const missing = await runCli(['check-config'], { POSTERN_REPORTS_DMARC_ENABLED: 'true' });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /reports\.dmarc\.orgName: required when reports\.dmarc\.enabled is true/);
    assert.match(missing.stderr, /reports\.dmarc\.email: required/);
    const half = await runCli(['check-config'], { ...enabled, POSTERN_REPORTS_DMARC_SIGNING_DOMAIN: 'example.net', POSTERN_REPORTS_DMARC_STATE_DIR: dir });
    assert.match(half.stderr, /reports\.dmarc\.signing: domain, selector and keyFile go together/);
    const badKey = path.join(dir, 'bad.pem');
    fs.writeFileSync(badKey, 'not a key');
    const key = await runCli(['check-config'], { ...enabled, POSTERN_REPORTS_DMARC_STATE_DIR: dir, POSTERN_REPORTS_DMARC_SIGNING_DOMAIN: 'example.net',
      POSTERN_REPORTS_DMARC_SIGNING_SELECTOR: 's', POSTERN_REPORTS_DMARC_SIGNING_KEY_FILE: badKey });
    assert.notEqual(key.code, 0);
    assert.match(key.stderr, /^POSTERN_REPORTS_DMARC_SIGNING_KEY_FILE: cannot use .*bad\.pem/m, 'named where it was set: the variable');
    assert.doesNotMatch(key.stderr, /\n\s+at /);
    const ok = await runCli(['check-config'], { ...enabled, POSTERN_REPORTS_DMARC_STATE_DIR: dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^reports: DMARC aggregate reports on, every 24 h, store ${dir}/dmarc-reports\\.sqlite, not signed, from r@example\\.net$`, 'm'));
  });

  it('check-config: failure reports need the reporting address, not the aggregate settings; a bad omitHeaders entry names the key', async () => {
    const missing = await runCli(['check-config'], { POSTERN_DOMAINS: 'example.net', POSTERN_REPORTS_DMARC_FAILURE_ENABLED: 'true' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /reports\.dmarc\.email: required when reports\.dmarc\.failure\.enabled is true/);
    assert.doesNotMatch(missing.stderr, /orgName/);
    const bad = await runCli(['check-config'], { POSTERN_DOMAINS: 'example.net', POSTERN_REPORTS_DMARC_FAILURE_ENABLED: 'true', POSTERN_REPORTS_DMARC_EMAIL: 'r@example.net',
      POSTERN_REPORTS_DMARC_FAILURE_OMIT_HEADERS: 'Subject,Bad Name' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^POSTERN_REPORTS_DMARC_FAILURE_OMIT_HEADERS: expected a header field name, e\.g\. Subject \(from environment\)$/m);
    const ok = await runCli(['check-config'], { POSTERN_DOMAINS: 'example.net', POSTERN_REPORTS_DMARC_FAILURE_ENABLED: 'true', POSTERN_REPORTS_DMARC_EMAIL: 'r@example.net' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^reports: DMARC failure reports on, header only and redacted, at most 5 per domain an hour and 10 a minute, not signed, from r@example\.net$/m);
    assert.doesNotMatch(ok.stdout, /aggregate reports on/);
  });

  it('the README failure report example passes check-config', async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Failure reports (RFC 9991)'));
    const block = /```yaml\n# postern\.yaml\n(reports:\n[\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'no failure report example in README.md');
    const file = path.join(dir, 'failure.yaml');
    fs.writeFileSync(file, `domains: [example.net]\n${block}`);
    const r = await runCli(['check-config', '--config', file], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reports: DMARC failure reports on, header only and redacted, at most 5 per domain an hour and 10 a minute, not signed, from dmarc-reports@example\.net$/m);
    const { config } = loadConfig({ file, env: {} });
    assert.deepEqual(config.reports.dmarc.failure.omitHeaders, ['Subject']);
  });

  it('the README example configuration loads', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const block = /```yaml\n# postern\.yaml\n(reports:\n[\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'no reports example in README.md');
    const file = path.join(dir, 'postern.yaml');
    fs.writeFileSync(file, block);
    const { config } = loadConfig({ file, env: {} });
    assert.equal(config.reports.dmarc.enabled, true);
    assert.equal(config.reports.dmarc.signing.selector, 'dmarc');
    assert.equal(config.reports.dmarc.email, 'dmarc-reports@example.net');
  });

  it('check-config and serve warn, without refusing, when report mail would not pass DMARC aligned (RFC 9990 §4)', async () => {
    const keyFile = path.join(dir, 'dkim.pem');
    fs.writeFileSync(keyFile, dkimKey('rsa', 1024).privateKey);
    const signed = (domain: string) => ({ ...enabled, POSTERN_REPORTS_DMARC_STATE_DIR: dir, POSTERN_REPORTS_DMARC_SIGNING_DOMAIN: domain,
      POSTERN_REPORTS_DMARC_SIGNING_SELECTOR: 's1', POSTERN_REPORTS_DMARC_SIGNING_KEY_FILE: keyFile });
    const unsigned = await runCli(['check-config'], { ...enabled, POSTERN_REPORTS_DMARC_STATE_DIR: dir });
    assert.equal(unsigned.code, 0, unsigned.stderr);
    assert.match(unsigned.stderr, /^warning: reports\.dmarc\.signing: reports are not DKIM-signed; they pass DMARC only if example\.net's SPF authorises the relay/m);
    assert.doesNotMatch(unsigned.stdout, /warning/);
    const elsewhere = await runCli(['check-config'], signed('reports.example.org'));
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
    assert.match(elsewhere.stderr, /^warning: reports\.dmarc\.signing\.domain: reports\.example\.org does not align with example\.net, the domain of reports\.dmarc\.email/m);
    for (const aligned of ['example.net', 'mail.example.net']) {
      const ok = await runCli(['check-config'], signed(aligned));
      assert.equal(ok.code, 0, ok.stderr);
      assert.doesNotMatch(ok.stderr, /warning/, aligned);
    }
    // serve: the same warning as a log line at start, and it runs
    const gw = await startChildGateway({ ...signed('example.org'), POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0',
      POSTERN_BACKEND_PORT: '9', POSTERN_DNS_SERVERS: '127.0.0.1:9', POSTERN_REPORTS_DMARC_SCHEDULE: 'false' });
    try {
      const line = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reports.dmarc.signing.domain: example.org does not align'));
      assert.equal(line.level, 40);
      await gw.waitForLog((l) => l.msg === 'postern listening');
    } finally {
      await gw.kill();
    }
  });
});
