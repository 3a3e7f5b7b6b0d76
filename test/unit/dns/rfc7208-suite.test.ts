/**
 * The RFC 7208 test suite's zones served by the loopback DNS server, evaluated by mailauth's
 * strict SPF through our resolver: checks the DNS layer and the harness against the suite's
 * DNS semantics (TIMEOUT, SPF-to-TXT duplication, `TXT: NONE`, CNAME loops, long labels, …).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { spf } from 'mailauth';
import { parseAllDocuments } from 'yaml';
import { createResolver, mailauthResolver } from '../../../src/dns/resolver.ts';
import { startDnsServer, type DnsTestServer, type Zone } from '../../harness/dns-server.ts';

interface Scenario {
  readonly description: string;
  readonly zonedata: Zone;
  readonly tests: Record<string, { host: string; helo?: string; mailfrom: string; result: string | string[] }>;
}

const SUITE = new URL('../../../../shared/conformance/rfc7208-tests.yml', import.meta.url);
const scenarios: Scenario[] = existsSync(SUITE)
  ? parseAllDocuments(readFileSync(SUITE, 'utf8')).map((doc) => doc.toJS() as Scenario)
  : [];

void describe('RFC 7208 suite through the DNS layer', { skip: scenarios.length === 0 ? 'shared/conformance not beside the repo' : false }, () => {
  let server: DnsTestServer;
  before(async () => {
    server = await startDnsServer();
  });
  after(() => server.close());

  for (const scenario of scenarios) {
    void describe(scenario.description, () => {
      for (const [name, t] of Object.entries(scenario.tests)) {
        void it(name, async () => {
          server.setZone(scenario.zonedata);
          // Generous for a busy machine (at 50 ms a loopback answer was sometimes too late, a false
          // temperror); the suite's TIMEOUT cases wait this long, a few seconds in all.
          const dns = createResolver({ servers: [server], timeoutMs: 400, attempts: 1 });
          try {
            const res = await spf({
              sender: t.mailfrom, ip: t.host, helo: t.helo ?? '', mta: 'mx.test', strict: true, resolver: mailauthResolver(dns),
            });
            assert.ok(([] as string[]).concat(t.result).includes(res.status.result), `${res.status.result}: ${res.status.comment}`);
          } finally {
            dns.close();
          }
        });
      }
    });
  }
});
