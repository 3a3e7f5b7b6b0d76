/**
 * The RFC 7208 test suite's zones served by the loopback DNS server, evaluated by mailauth's
 * strict SPF through our resolver: checks the DNS layer and the harness against the suite's
 * DNS semantics (TIMEOUT, SPF-to-TXT duplication, `TXT: NONE`, CNAME loops, long labels, …).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spf } from 'mailauth';
import { createResolver, mailauthResolver } from '../../../src/dns/resolver.ts';
import { rfc7208Suite } from '../../harness/conformance.ts';
import { startDnsServer, type DnsTestServer } from '../../harness/dns-server.ts';

const { scenarios, skip } = rfc7208Suite();

void describe('RFC 7208 suite through the DNS layer', { skip }, () => {
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
          // The suite's TIMEOUT records cost one timeout each; every other answer comes from
          // loopback, which a busy CPU can still delay by far more than 50 ms
          const dns = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
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
