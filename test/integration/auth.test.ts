/**
 * SPF, DKIM and DMARC end to end: a client sends over SMTP, the loopback DNS serves the
 * sender's records, and we read the Authentication-Results the backend received (or the
 * reply the client got). The shipped default policy is in force.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { message, sign } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { headerValue, startWorld, type World } from '../harness/world.ts';

describe('authentication end to end', () => {
  let w: World;
  before(async () => {
    w = await startWorld({
      zone: {
        'spf-fail.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
        'spf-soft.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 ~all' }],
        'spf-none.example': [{ A: '192.0.2.10' }],
        'spf-temp.example': ['TIMEOUT'],
        'other.example': [{ A: '192.0.2.20' }],
        'quar.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
        '_dmarc.quar.example': [{ TXT: 'v=DMARC1; p=quarantine' }],
        'lax.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
        '_dmarc.lax.example': [{ TXT: 'v=DMARC1; p=none' }],
      },
    });
  });
  after(() => w.close());
  beforeEach(() => {
    w.sink.messages.length = 0;
  });

  /** Sends and returns the A-R the backend saw (asserting the message was accepted). */
  const deliver = async (from: string, raw: string, headerFrom?: string): Promise<{ ar: string; raw: Buffer }> => {
    void headerFrom;
    const r = await sendMail(w.gw.port, { from, to: ['user@example.net'], message: raw });
    assert.equal(r.data?.code, 250, `expected 250, got ${r.data?.lines.join('|') ?? r.mail.lines.join('|')}`);
    const [m] = await w.sink.waitFor(1);
    const ar = headerValue(m!.raw, 'Authentication-Results');
    assert.ok(ar, 'Authentication-Results present');
    assert.ok(ar.startsWith('mx.postern.test;'), ar);
    return { ar, raw: m!.raw };
  };

  for (const [result, domain] of [['pass', 'good.example'], ['fail', 'spf-fail.example'], ['softfail', 'spf-soft.example'], ['none', 'spf-none.example']] as const) {
    it(`SPF ${result}`, async () => {
      const { ar } = await deliver(`bob@${domain}`, message({ from: `bob@${domain}` }));
      assert.match(ar, new RegExp(`spf=${result}\\b[^;]*smtp\\.mailfrom=(bob@)?${domain.replace('.', '\\.')}`));
    });
  }

  it('SPF temperror: the default policy tempfails (451 4.7.5) and nothing reaches the backend', async () => {
    const r = await sendMail(w.gw.port, { from: 'bob@spf-temp.example', to: ['user@example.net'], message: message({ from: 'bob@spf-temp.example' }) });
    assert.equal(r.mail.code, 250);
    assert.equal(r.data?.code, 451, r.data?.lines.join('|'));
    assert.match(r.data.text, /^4\.7\.5 /);
    assert.equal(w.sink.messages.length, 0);
    const d = w.gw.decisions().at(-1)!;
    assert.equal((d.auth as { spf: { result: string } }).spf.result, 'temperror');
  });

  it('DKIM pass with RSA-SHA256 and with Ed25519-SHA256', async () => {
    for (const [selector, key] of [['s1', w.keys.rsa], ['s2', w.keys.ed25519]] as const) {
      w.sink.messages.length = 0;
      const raw = await sign(message({ from: 'alice@good.example' }), { domain: 'good.example', selector, key });
      const { ar } = await deliver('alice@other.example', raw);
      assert.match(ar, new RegExp(`dkim=pass[^;]*header\\.d=good\\.example[^;]*header\\.s=${selector}`), ar);
      assert.match(ar, new RegExp(`header\\.a=${key.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'}`), ar);
      assert.match(ar, /dmarc=pass/, 'aligned DKIM passes DMARC although SPF is none');
    }
  });

  it('DKIM fails when the body or a signed header was altered, and is neutral when the key is missing', async () => {
    const signed = await sign(message({ from: 'alice@good.example', body: 'original body\r\n' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
    // SPF passes for good.example, so DMARC passes by SPF alignment and the message is delivered.
    const body = await deliver('alice@good.example', signed.replace('original body', 'altered body'));
    assert.match(body.ar, /dkim=fail[^;]*header\.d=good\.example/, body.ar);
    w.sink.messages.length = 0;
    const header = await deliver('alice@good.example', signed.replace(/^Subject: .*$/m, 'Subject: altered'));
    assert.match(header.ar, /dkim=fail/, header.ar);
    w.sink.messages.length = 0;
    const nokey = await sign(message({ from: 'alice@good.example' }), { domain: 'good.example', selector: 'missing', key: w.keys.rsa });
    const missing = await deliver('alice@good.example', nokey);
    assert.match(missing.ar, /dkim=neutral[^;]*no key/, missing.ar);
  });

  it('a signature whose selector cannot be a DNS label (64 octets) is neutral, not a temperror that would hold the mail', async () => {
    // strict mode refuses such a selector as a syntax error already; lenient mode would look
    // the key up, and mailauth would report the resolver's refusal (EBADNAME) as temperror.
    const lenient = await startWorld({ config: { auth: { strict: false } } });
    try {
      const raw = await sign(message({ from: 'alice@good.example' }), { domain: 'good.example', selector: 's'.repeat(64), key: w.keys.rsa });
      const r = await sendMail(lenient.gw.port, { from: 'alice@good.example', to: ['user@example.net'], message: raw });
      assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
      const [m] = await lenient.sink.waitFor(1);
      const ar = headerValue(m!.raw, 'Authentication-Results') ?? '';
      assert.match(ar, /dkim=neutral/, ar);
      assert.doesNotMatch(ar, /temperror/, ar);
    } finally {
      await lenient.close();
    }
  });

  it('DMARC pass through SPF alignment', async () => {
    const { ar } = await deliver('bob@good.example', message({ from: 'bob@good.example' }));
    assert.match(ar, /spf=pass/);
    assert.match(ar, /dkim=none/);
    assert.match(ar, /dmarc=pass[^;]*header\.from=good\.example/);
  });

  it('DMARC fail under p=reject: 550 5.7.1 naming the domain and p=reject at end of DATA, nothing at the backend', async () => {
    const r = await sendMail(w.gw.port, { from: 'spoofer@other.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) });
    assert.equal(r.rcpt[0]?.code, 250);
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    assert.match(r.data.text, /^5\.7\.1 .*good\.example.*p=reject/);
    assert.equal(w.sink.messages.length, 0);
    const d = w.gw.decisions().at(-1)!;
    assert.equal(d.action, 'reject');
    assert.equal(d.reason, 'dmarc-policy');
    assert.equal(d.from_domain, 'good.example');
  });

  it('DMARC fail under p=quarantine: delivered and tagged for quarantine', async () => {
    const { ar, raw } = await deliver('x@other.example', message({ from: 'ceo@quar.example' }));
    assert.match(ar, /dmarc=fail[^;]*header\.from=quar\.example/);
    assert.match(headerValue(raw, 'X-Postern-Quarantine') ?? '', /rule=/);
    assert.match(headerValue(raw, 'X-Postern-Verdict') ?? '', /^quarantine; rule=/);
  });

  it('DMARC fail under p=none: delivered untouched apart from our trace headers', async () => {
    const { ar, raw } = await deliver('x@other.example', message({ from: 'ceo@lax.example' }));
    assert.match(ar, /dmarc=fail[^;]*header\.from=lax\.example/);
    assert.equal(headerValue(raw, 'X-Postern-Verdict'), null);
    assert.equal(headerValue(raw, 'X-Postern-Quarantine'), null);
  });

  it('removes forged Authentication-Results claiming our authserv-id and incoming X-Postern-* fields, keeps others', async () => {
    const raw = message({
      from: 'bob@good.example',
      headers: [
        'Authentication-Results: mx.postern.test; dkim=pass header.d=paypal.example; dmarc=pass',
        'Authentication-Results: (comment) MX.Postern.Test;\r\n spf=pass',
        'ARC-Authentication-Results: i=1; mx.postern.test; dmarc=pass',
        'Authentication-Results: upstream.example; spf=pass smtp.mailfrom=good.example',
        'X-Postern-Verdict: accept; rule=trusted',
      ],
    });
    const { raw: got } = await deliver('bob@good.example', raw);
    const text = got.toString('latin1');
    const ours = text.match(/^Authentication-Results: mx\.postern\.test;/gim) ?? [];
    assert.equal(ours.length, 1, 'only the header we added claims our authserv-id');
    assert.ok(text.startsWith('Authentication-Results: mx.postern.test;') || /^Received:/.test(text), 'our headers are on top');
    assert.doesNotMatch(text, /paypal\.example/);
    assert.doesNotMatch(text, /MX\.Postern\.Test/);
    assert.doesNotMatch(text, /^ARC-Authentication-Results: i=1; mx\.postern\.test/im);
    assert.doesNotMatch(text, /rule=trusted/);
    assert.match(text, /^Authentication-Results: upstream\.example; spf=pass/m);
  });

  it('adds a Received trace field with the client address, HELO, our host name and the session id', async () => {
    const { raw } = await deliver('bob@good.example', message({ from: 'bob@good.example' }));
    const received = headerValue(raw, 'Received') ?? '';
    assert.match(received, /^from client\.example \(.*\[127\.0\.0\.1\]\) by mx\.postern\.test \(Postern\) with ESMTP id \w+ for <user@example\.net>; /, received);
  });
});
