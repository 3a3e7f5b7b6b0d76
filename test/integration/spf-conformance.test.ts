/**
 * The RFC 7208 (openspf.org) test suite through the gateway, over SMTP: each scenario's zone
 * is served by the loopback DNS server, each case connects with a PROXY header claiming the
 * case's client address, says its HELO and MAIL FROM, and the `spf=` result is read from the
 * Authentication-Results header that reached the backend. A policy that accepts everything
 * is in force so that every result can be seen at the backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rfc7208Suite } from '../harness/conformance.ts';
import { message } from '../harness/mail.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { headerValue, proxyV1, startWorld, type World } from '../harness/world.ts';

const { scenarios, skip } = rfc7208Suite();

/**
 * Cases whose MAIL FROM an SMTP server must refuse before any SPF check, so no result can
 * reach the backend: the RFC 5321 syntax check comes first (each names why).
 */
const NOT_OVER_SMTP: Record<string, string> = {
  nolocalpart: 'MAIL FROM:<@example.net> is not an RFC 5321 Mailbox; smtp-server refuses it with 501',
  'emptylabel': 'MAIL FROM with an empty DNS label (A...example.com) is refused by smtp-server\'s syntax check',
  'dorky-sentinel': 'the MAIL FROM local part "Macro Error" holds a space; smtp-server refuses even its quoted form (501 5.1.7)',
  'invalid-hello-macro': 'the HELO "JUMPIN\' JACK" holds a space: EHLO takes one argument (RFC 5321 §4.1.1.1), 501',
  toolonglabel: 'the MAIL FROM domain has a label of 64 octets, a name DNS cannot hold (RFC 1035 §2.3.4): Postern refuses it with 553 5.1.7 before SPF',
};

/** A local part with a space must be quoted on the wire (RFC 5321 §4.1.2). */
function mailbox(address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  return /[\s"]/.test(local) ? `"${local.replace(/(["\\])/g, '\\$1')}"${address.slice(at)}` : address;
}

describe('RFC 7208 SPF test suite through the gateway', { skip }, () => {
  let w: World;
  before(async () => {
    w = await startWorld({
      policies: { '00-accept.yaml': 'rules:\n  - name: accept-all\n    match: {}\n    action: accept\n' },
      // every scenario reuses names with other records: no cache across them
      config: {
        proxyProtocol: { trusted: ['127.0.0.1'] }, dns: { cacheSize: 0, timeoutMs: 1_000, attempts: 1 },
        // hundreds of sessions from a few claimed addresses in seconds: this suite is about SPF, not rates
        rateLimits: { ipConnections: { rate: '100000/min', burst: 100000 }, ipMessages: { rate: '100000/min', burst: 100000 } },
      },
    });
  });
  after(() => w.close());

  for (const scenario of scenarios) {
    describe(scenario.description, () => {
      for (const [name, t] of Object.entries(scenario.tests)) {
        const skip = NOT_OVER_SMTP[name];
        it(name, skip ? { skip } : {}, async () => {
          w.dns.setZone(scenario.zonedata);
          w.sink.messages.length = 0;
          const expected = ([] as string[]).concat(t.result);
          const { client, greeting } = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1(t.host) });
          assert.equal(greeting.code, 220);
          try {
            const ehlo = await client.cmd(`EHLO ${t.helo ?? 'unknown.invalid'}`);
            assert.equal(ehlo.code, 250, ehlo.lines.join('|'));
            const mail = await client.cmd(`MAIL FROM:<${mailbox(t.mailfrom)}>`);
            assert.equal(mail.code, 250, `MAIL refused: ${mail.lines.join('|')}`);
            assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
            const end = await client.data(message({ from: 'x@example.net' }));
            assert.equal(end.code, 250, end.lines.join('|'));
          } finally {
            await client.quit();
          }
          const [m] = await w.sink.waitFor(1);
          const ar = headerValue(m!.raw, 'Authentication-Results') ?? '';
          const got = /\bspf=(\w+)/.exec(ar)?.[1];
          assert.ok(got && expected.includes(got), `${name}: expected ${expected.join('|')}, got spf=${got} in ${ar}`);
        });
      }
    });
  }
});
