/**
 * DMARC aggregate reports end to end (issue 8): mail from several domains that publish rua=
 * goes through TWO gateway processes sharing one Redis; `postern reports send --now` (a third
 * process) sends one gzip'd, schema-valid report per domain through the backend sink, whose
 * counts per source IP and disposition equal what was sent; a destination that did not
 * authorise itself (RFC 9990 §3) gets nothing; a second run sends nothing again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey } from '../harness/mail.ts';
import { collected, expectedCounts, reportZone, sendTraffic } from '../harness/dmarc-traffic.ts';
import { clearSharedPrefix, sharedRedisUrl, uniquePrefix } from '../harness/redis.ts';
import { assertSchemaValid, countsOf, reportsIn, runCli } from '../harness/reports.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { eventually } from '../harness/wait.ts';

const REPORTER = 'dmarc-reports@postern.test';
const signing = dkimKey('rsa', 1024);

const scrapeRows = async (port: number): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^postern_dmarc_rows_collected_total (\d+)/m.exec(text)?.[1] ?? 0);
};

describe('DMARC aggregate reports from two gateway processes sharing Redis', () => {
  let dns: DnsTestServer;
  let sink: Sink;
  let env: Record<string, string>;
  const prefix = uniquePrefix('dmarc-reports');
  const gateways: ChildGateway[] = [];
  let keyFile: string;

  before(async () => {
    dns = await startDnsServer({ ...reportZone(), 'r1._domainkey.postern.test': [{ TXT: signing.record }] });
    sink = await startSink();
    const fs = await import('node:fs');
    const os = await import('node:os');
    keyFile = `${fs.mkdtempSync(`${os.tmpdir()}/postern-dkim-`)}/r1.pem`;
    fs.writeFileSync(keyFile, signing.privateKey);
    env = {
      POSTERN_DOMAINS: 'example.net', POSTERN_HOSTNAME: 'mx.postern.test',
      POSTERN_BACKEND_PORT: String(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`,
      POSTERN_REDIS_URL: sharedRedisUrl(), POSTERN_REDIS_KEY_PREFIX: prefix, POSTERN_PROXY_PROTOCOL_TRUSTED: '127.0.0.1/32',
      POSTERN_REPORTS_DMARC_ENABLED: 'true', POSTERN_REPORTS_DMARC_ORG_NAME: 'Postern Test Org', POSTERN_REPORTS_DMARC_EMAIL: REPORTER,
      POSTERN_REPORTS_DMARC_SIGNING_DOMAIN: 'postern.test', POSTERN_REPORTS_DMARC_SIGNING_SELECTOR: 'r1', POSTERN_REPORTS_DMARC_SIGNING_KEY_FILE: keyFile,
      POSTERN_REPORTS_DMARC_RATE_PER_MINUTE: '600',
      // the CLI sends here; the in-serve schedule would race it for the jobs (test/unit/reports/scheduler.test.ts)
      POSTERN_REPORTS_DMARC_SCHEDULE: 'false',
    };
    for (let i = 0; i < 2; i++) gateways.push(await startChildGateway({ ...env, POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0' }));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.kill()));
    await sink.close();
    await dns.close();
    await clearSharedPrefix(prefix);
  });

  it('one schema-valid, signed report per domain with the counts sent, none to an unverified destination, none twice', async () => {
    await sendTraffic(gateways.map((g) => g.smtpPort));
    // Collection is fire-and-forget after the reply: wait until both nodes have counted everything.
    await eventually(async () => (await scrapeRows(gateways[0]!.httpPort)) + (await scrapeRows(gateways[1]!.httpPort)) === collected(), 'rows counted on both nodes');
    assert.ok(await scrapeRows(gateways[0]!.httpPort) > 0 && await scrapeRows(gateways[1]!.httpPort) > 0, 'both nodes fed the report');

    const before = sink.messages.length;
    const r = await runCli(['reports', 'send', '--now'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reports generated 3, sent 2, deferred 0, failed 0, refused 1, uncertain 0\n$/);
    const reports = reportsIn(sink.messages.slice(before), REPORTER);
    assert.deepEqual(reports.map((x) => x.to).sort(), ['dmarc@a.example', 'reports@rua.example']);
    for (const report of reports) {
      const domain = report.to === 'dmarc@a.example' ? 'a.example' : 'b.example';
      assert.deepEqual(countsOf(report.records), expectedCounts(domain), report.xml);
      await assertSchemaValid(report.xml);
      assert.match(report.subject ?? '', new RegExp(`^Report Domain: ${domain.replace('.', '\\.')} Submitter: postern\\.test Report-ID: <[^<>@\\s]+@postern\\.test>$`));
      assert.equal(report.from, REPORTER);
      assert.equal(report.contentType, 'application/gzip');
      assert.match(report.filename, new RegExp(`^postern\\.test!${domain.replace('.', '\\.')}!\\d+!\\d+\\.xml\\.gz$`));
      assert.match(report.xml, /<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2\.0">/);
      assert.match(report.xml, /<org_name>Postern Test Org<\/org_name>/);
      const verified = await dkimVerify(report.raw, {
        resolver: (name: string) => name === 'r1._domainkey.postern.test'
          ? Promise.resolve([[signing.record]])
          : Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' })),
      });
      assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));
    }
    assert.match(reports.find((x) => x.to === 'reports@rua.example')!.xml, /<policy_published>\s*<domain>b\.example<\/domain>\s*<p>quarantine<\/p>/);

    // Nothing is due any more: a second run sends nothing.
    const again = await runCli(['reports', 'send'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^reports generated 0, sent 0, deferred 0, failed 0, refused 0, uncertain 0\n$/);
    assert.equal(reportsIn(sink.messages.slice(before), REPORTER).length, 2);
  });
});
