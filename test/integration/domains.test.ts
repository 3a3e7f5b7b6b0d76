/**
 * `domains` as the README documents it, over SMTP: exact domains, `.example.org` and
 * `*.example.org` (subdomains only, not the parent), IDN domains in U-label and A-label form,
 * and relaying refused for everything else. The accepted ones reach the backend with the
 * domain in A-label form (RFC 5890), whatever form the client used.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

const FROM = 'bob@good.example';

describe('recipient domains: wildcards, IDN, relaying', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ config: { domains: ['example.net', '.sub.example.org', '*.wild.example', 'Bücher.example', 'xn--caf-dma.example'] } });
  });
  after(() => w.close());

  /** One transaction to `rcpt`; returns the RCPT reply and, when accepted, the final reply. */
  async function deliver(rcpt: string, utf8 = false): Promise<{ rcpt: number; text: string; data: number | null }> {
    const { client } = await SmtpTestClient.connect(w.gw.port);
    try {
      await client.cmd('EHLO client.example');
      assert.equal((await client.cmd(`MAIL FROM:<${FROM}>${utf8 ? ' SMTPUTF8' : ''}`)).code, 250);
      const r = await client.cmd(`RCPT TO:<${rcpt}>`);
      const data = r.code === 250 ? (await client.data(message({ from: FROM, to: rcpt }))).code : null;
      return { rcpt: r.code, text: r.text, data };
    } finally {
      await client.quit();
    }
  }

  const accepted: Array<[string, string, boolean]> = [
    // written, as the backend must see it, needs SMTPUTF8
    ['user@example.net', 'user@example.net', false],
    ['user@EXAMPLE.NET', 'user@example.net', false],
    ['user@mx.sub.example.org', 'user@mx.sub.example.org', false],
    ['user@a.b.sub.example.org', 'user@a.b.sub.example.org', false],
    ['user@x.wild.example', 'user@x.wild.example', false],
    ['user@xn--bcher-kva.example', 'user@xn--bcher-kva.example', false],
    ['user@bücher.example', 'user@xn--bcher-kva.example', true],
    ['user@BÜCHER.example', 'user@xn--bcher-kva.example', true],
    ['user@café.example', 'user@xn--caf-dma.example', true],
  ];
  for (const [rcpt, atBackend, utf8] of accepted) {
    it(`accepts ${rcpt} and relays it as ${atBackend}`, async () => {
      const before = w.sink.messages.length;
      const wireBefore = w.sink.received().length;
      const r = await deliver(rcpt, utf8);
      assert.equal(r.rcpt, 250, r.text);
      assert.equal(r.data, 250);
      assert.equal(w.sink.messages.length, before + 1);
      // on the wire, not the sink's parsed address (smtp-server shows A-labels as Unicode)
      const wire = w.sink.received().subarray(wireBefore).toString('utf8');
      assert.ok(wire.includes(`RCPT TO:<${atBackend}>`), `backend saw RCPT TO:<${atBackend}>`);
    });
  }

  const refused: Array<[string, string]> = [
    ['user@mail.example.net', 'an exact domain does not cover its subdomains'],
    ['user@sub.example.org', '.sub.example.org does not include sub.example.org itself'],
    ['user@wild.example', '*.wild.example does not include wild.example itself'],
    ['user@notsub.example.org', 'a sibling of the configured parent'],
    ['user@evilsub.example.org', 'a name ending in the suffix without a dot'],
    ['victim@gmail.com', 'someone else\'s domain'],
    ['victim@com', 'a TLD'],
    ['user@bücher.example.evil', 'an IDN domain under another parent'],
  ];
  for (const [rcpt, why] of refused) {
    it(`refuses ${rcpt} with 550 5.7.1 (${why})`, async () => {
      const before = w.sink.messages.length;
      const r = await deliver(rcpt, /[^\x00-\x7f]/.test(rcpt));
      assert.equal(r.rcpt, 550, r.text);
      assert.match(r.text, /^5\.7\.1 Relaying denied/);
      assert.equal(w.sink.messages.length, before);
    });
  }
});
