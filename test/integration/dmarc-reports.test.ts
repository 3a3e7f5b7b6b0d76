/**
 * DMARC aggregate reports end to end (issue 8): mail from several domains that publish rua=
 * goes through TWO gateway processes sharing one Redis; `postern reports send --now` (a third
 * process) sends one gzip'd, schema-valid report per domain through the backend sink, whose
 * counts per source IP and disposition equal what was sent; a destination that did not
 * authorise itself (RFC 9990 §3) gets nothing; a second run sends nothing again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { dkimVerify } from 'mailauth';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey, message } from '../harness/mail.ts';
import { deletePrefix, sharedRedisUrl, uniquePrefix } from '../harness/redis.ts';
import { assertSchemaValid, countsOf, reportsIn, runCli } from '../harness/reports.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { proxyV1 } from '../harness/world.ts';

const REPORTER = 'dmarc-reports@postern.test';
const signing = dkimKey('rsa', 1024);

/** a.example: p=none, own rua; b.example: p=quarantine, rua at a verified third party; c.example: p=reject, rua not authorised. */
export const REPORT_ZONE = {
  'a.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.a.example': [{ TXT: 'v=DMARC1; p=none; rua=mailto:dmarc@a.example' }],
  'b.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.b.example': [{ TXT: 'v=DMARC1; p=quarantine; rua=mailto:reports@rua.example' }],
  'b.example._report._dmarc.rua.example': [{ TXT: 'v=DMARC1' }],
  'c.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.c.example': [{ TXT: 'v=DMARC1; p=reject; rua=mailto:agg@other.example' }],
  'nr.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.nr.example': [{ TXT: 'v=DMARC1; p=reject' }],
  'r1._domainkey.postern.test': [{ TXT: signing.record }],
} as const;

/** [domain, client ip, expected disposition, how many] */
export const TRAFFIC: ReadonlyArray<readonly [string, string, string, number]> = [
  ['a.example', '192.0.2.10', 'none', 3], // SPF pass, p=none
  ['a.example', '198.51.100.7', 'none', 2], // SPF fail, p=none: delivered
  ['b.example', '192.0.2.11', 'pass', 2], // passes an enforcing policy: "pass" (RFC 9990)
  ['b.example', '203.0.113.9', 'quarantine', 1],
  ['c.example', '198.51.100.8', 'reject', 1],
  ['nr.example', '192.0.2.12', 'none', 1], // no rua=: never collected
];

export async function sendTraffic(ports: readonly number[]): Promise<void> {
  let n = 0;
  for (const [domain, ip, disposition, count] of TRAFFIC) {
    for (let i = 0; i < count; i++) {
      const port = ports[n++ % ports.length]!;
      const r = await sendMail(port, { from: `news@${domain}`, to: ['user@example.net'], message: message({ from: `news@${domain}` }), preface: proxyV1(ip) });
      assert.equal(r.data?.code, disposition === 'reject' ? 550 : 250, `${domain} from ${ip}: ${JSON.stringify(r)}`);
    }
  }
}

export const collected = (): number => TRAFFIC.filter(([d]) => d !== 'nr.example').reduce((n, [, , , c]) => n + c, 0);

export function expectedCounts(domain: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [d, ip, disposition, count] of TRAFFIC) if (d === domain) out[`${ip}|${disposition}`] = (out[`${ip}|${disposition}`] ?? 0) + count;
  return out;
}

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
    dns = await startDnsServer(REPORT_ZONE);
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
    };
    for (let i = 0; i < 2; i++) gateways.push(await startChildGateway({ ...env, POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0' }));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.kill()));
    await sink.close();
    await dns.close();
    const client = new Redis(sharedRedisUrl());
    await deletePrefix(client, prefix);
    client.disconnect();
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
        resolver: async (name: string) => {
          if (name === 'r1._domainkey.postern.test') return [[signing.record]];
          throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
        },
      } as unknown as Parameters<typeof dkimVerify>[1]);
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
