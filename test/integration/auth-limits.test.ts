/**
 * Authentication work per message is bounded (issue 10): DKIM signatures verified, ARC sets
 * validated, the time DKIM/ARC/DMARC may take after the last byte (auth.timeoutMs) and the
 * time SPF may take at MAIL (auth.spfTimeoutMs). Past a deadline the pending checks are
 * temperror, so the default policy's tempfail path answers (451 4.7.5); past a cap the rest is
 * not verified. Counted in postern_message_limits_total, and said in the decision line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sealMessage } from 'mailauth';
import { message, sign } from '../harness/mail.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { headerValue, startWorld, type World } from '../harness/world.ts';

const metrics = async (w: World): Promise<string> => (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();

/** Signs `raw` once per selector, each signature on top of the previous ones. */
async function signMany(raw: string, domain: string, selectors: readonly string[], key: World['keys']['rsa']): Promise<string> {
  let out = raw;
  for (const selector of selectors) out = await sign(out, { domain, selector, key });
  return out;
}

describe('caps on DKIM signatures and ARC sets (defaults)', () => {
  let w: World;
  const selectors = Array.from({ length: 8 }, (_, i) => `cap${i + 1}`);
  before(async () => {
    w = await startWorld({ config: { auth: { maxDkimSignatures: 5 } } });
    w.dns.addZone(Object.fromEntries(selectors.map((s) => [`${s}._domainkey.good.example`, [{ TXT: w.keys.rsa.record }]])));
  });
  after(() => w.close());

  it('8 signatures: the top 5 are verified (5 key lookups), the other 3 reported as dkim=policy, none looked up', async () => {
    const raw = await signMany(message({ from: 'alice@good.example' }), 'good.example', selectors, w.keys.rsa);
    const r = await sendMail(w.gw.port, { from: 'alice@other.example', to: ['user@example.net'], message: raw });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const [m] = await w.sink.waitFor(1);
    const ar = headerValue(m!.raw, 'Authentication-Results') ?? '';
    // the last signature added is on top: cap8 … cap4 are verified
    for (const s of ['cap8', 'cap7', 'cap6', 'cap5', 'cap4']) assert.match(ar, new RegExp(`dkim=pass[^;]*header\\.s=${s}`), ar);
    assert.match(ar, /dkim=policy \(3 more signatures not verified, at most 5 per message\)/, ar);
    const looked = w.dns.queries.filter((q) => q.name.endsWith('._domainkey.good.example')).map((q) => q.name.split('.')[0]);
    assert.deepEqual([...new Set(looked)].sort(), ['cap4', 'cap5', 'cap6', 'cap7', 'cap8']);
    const d = w.gw.decisions().at(-1)! as { auth: { dkim: Array<{ result: string; reason: string }> } };
    assert.equal(d.auth.dkim.filter((s) => s.result === 'pass').length, 5);
    assert.match(d.auth.dkim.find((s) => s.result === 'policy')?.reason ?? '', /3 more DKIM signature\(s\) not verified \(auth\.maxDkimSignatures 5\)/);
    assert.match(await metrics(w), /^postern_message_limits_total\{limit="dkim-signatures"\} 1$/m);
  });

  it('an ARC chain of 11 sets (over auth.maxArcSets 10) is arc=fail with no ARC-Seal key looked up', async () => {
    w.dns.addZone({ 'arc._domainkey.forwarder.example': [{ TXT: w.keys.rsa.record }] });
    let raw = Buffer.from(message({ from: 'bob@good.example' }));
    for (let i = 1; i <= 11; i++) {
      const seal = await sealMessage(raw, { signingDomain: 'forwarder.example', selector: 'arc', privateKey: w.keys.rsa.privateKey, cv: i === 1 ? 'none' : 'pass', authResults: `forwarder.example; spf=pass smtp.mailfrom=good.example` });
      raw = Buffer.concat([seal, raw]);
    }
    const queriesBefore = w.dns.queries.length;
    const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: raw });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const m = (await w.sink.waitFor(2)).at(-1)!;
    const ar = headerValue(m.raw, 'Authentication-Results') ?? '';
    assert.match(ar, /arc=fail \(chain of 11 sets, at most 10 validated\)/, ar);
    // the newest ARC-Message-Signature is a DKIM-style signature mailauth checks while reading
    // the message; the 11 seals are never checked
    const sealLookups = w.dns.queries.slice(queriesBefore).filter((q) => q.name === 'arc._domainkey.forwarder.example');
    assert.ok(sealLookups.length <= 1, `at most the one lookup for the newest AMS, got ${sealLookups.length}`);
    const d = w.gw.decisions().at(-1)! as { auth: { arc: { result: string; reason: string } } };
    assert.deepEqual(d.auth.arc, { result: 'fail', reason: 'ARC chain of 11 sets is longer than auth.maxArcSets (10)' });
    assert.match(await metrics(w), /^postern_message_limits_total\{limit="arc-sets"\} 1$/m);
  });
});

describe('deadlines: DKIM/ARC/DMARC after the last byte, SPF at MAIL', () => {
  let w: World;
  // 4 s per lookup (2 attempts of 2 s): 12 signatures would take 48 s one after the other
  const selectors = Array.from({ length: 12 }, (_, i) => `slow${i + 1}`);
  before(async () => {
    w = await startWorld({
      zone: {
        ...Object.fromEntries(selectors.map((s) => [`${s}._domainkey.slow.example`, ['TIMEOUT']])),
        '_dmarc.slow.example': ['TIMEOUT'],
        'slow.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }],
        'slow-spf.example': ['TIMEOUT'],
      },
      config: {
        dns: { timeoutMs: 2_000, attempts: 2 },
        auth: { timeoutMs: 1_500, spfTimeoutMs: 1_000, maxDkimSignatures: 20 },
      },
    });
  });
  after(() => w.close());

  it('12 signatures whose key lookups time out: 451 4.7.5 soon after auth.timeoutMs, the other keys never asked for', async () => {
    const raw = await signMany(message({ from: 'ceo@slow.example' }), 'slow.example', selectors, w.keys.rsa);
    const { client } = await SmtpTestClient.connect(w.gw.port);
    try {
      await client.cmd('EHLO client.example');
      assert.equal((await client.cmd('MAIL FROM:<ceo@slow.example>')).code, 250);
      assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
      // generous: the point is 1.5 s against 48 s, not speed
      const r = await client.data(raw, 20_000);
      assert.equal(r.code, 451, r.lines.join('|'));
      assert.match(r.text, /^4\.7\.5 /);
    } finally {
      await client.quit();
    }
    assert.equal(w.sink.messages.length, 0);
    const asked = new Set(w.dns.queries.filter((q) => q.name.endsWith('._domainkey.slow.example')).map((q) => q.name));
    assert.ok(asked.size <= 1, `only the lookup in flight at the deadline was sent, got ${[...asked].join(', ')}`);
    const d = w.gw.decisions().at(-1)! as { action: string; rule: string; auth: { dkim: Array<{ result: string; reason: string }>; dmarc: { result: string; reason: string } | null } };
    assert.equal(d.action, 'tempfail');
    assert.equal(d.rule, 'auth-temperror-retry');
    assert.equal(d.auth.dkim.length, 12);
    assert.ok(d.auth.dkim.every((s) => s.result === 'temperror' && s.reason.includes('authentication deadline passed')), JSON.stringify(d.auth.dkim));
    assert.match(await metrics(w), /^postern_message_limits_total\{limit="auth-deadline"\} 1$/m);
  });

  it('SPF whose lookups time out: MAIL answered soon after auth.spfTimeoutMs, then the tempfail path at DATA', async () => {
    const { client } = await SmtpTestClient.connect(w.gw.port);
    try {
      await client.cmd('EHLO client.example');
      // 4 s per lookup without the deadline
      const mail = await client.cmd('MAIL FROM:<bob@slow-spf.example>', 20_000);
      assert.equal(mail.code, 250, mail.lines.join('|'));
      assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
      const r = await client.data(message({ from: 'bob@slow-spf.example' }), 20_000);
      assert.equal(r.code, 451, r.lines.join('|'));
      assert.match(r.text, /^4\.7\.5 /);
    } finally {
      await client.quit();
    }
    const d = w.gw.decisions().at(-1)! as { auth: { spf: { result: string; reason: string } } };
    assert.equal(d.auth.spf.result, 'temperror');
    assert.match(d.auth.spf.reason, /SPF deadline of 1000 ms passed/);
    assert.match(await metrics(w), /^postern_message_limits_total\{limit="spf-deadline"\} 1$/m);
  });
});

describe('which signatures are verified (defaults: auth.maxDkimSignatures 10, auth.maxDkimHeaderNames 1000)', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(() => w.close());

  /** A signature that cannot verify, by a domain that is not the author's (its key does not exist). */
  const junk = (i: number, h = 'from:to:subject'): string =>
    `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=junk${i}.example; s=j${i};\r\n h=${h}; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA${i}\r\n`;

  it('12 junk signatures on top of the author\'s valid one (p=reject): the aligned one is verified first, dkim=pass, delivered', async () => {
    const signed = await sign(message({ from: 'ceo@good.example' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
    const raw = Array.from({ length: 12 }, (_, i) => junk(i + 1)).join('') + signed;
    const before = w.sink.messages.length;
    // an envelope sender of another domain: DKIM is DMARC's only way to pass
    const r = await sendMail(w.gw.port, { from: 'bounce@other.example', to: ['user@example.net'], message: raw });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const m = (await w.sink.waitFor(before + 1)).at(-1)!;
    const ar = headerValue(m.raw, 'Authentication-Results') ?? '';
    assert.match(ar, /dkim=pass[^;]*header\.d=good\.example/, ar);
    assert.match(ar, /dkim=policy \(3 more signatures not verified, at most 10 per message\)/, ar);
    assert.match(ar, /dmarc=pass/, ar);
    // verified: the author's and the 9 junk signatures on top; the 3 junk ones below them are not
    const verified = [...ar.matchAll(/header\.d=([a-z0-9.]+)/g)].map((x) => x[1]);
    assert.deepEqual(verified.sort(), ['good.example', ...Array.from({ length: 9 }, (_, i) => `junk${i + 1}.example`)].sort(), ar);
  });

  it('signatures listing more than 1000 names in h= are not verified (dkim=policy) and take no place among the verified', async () => {
    const names = Array.from({ length: 5_000 }, (_, i) => `x${i}`).join(':');
    const fill = Array.from({ length: 900 }, (_, i) => `X-F${i}: v`).join('\r\n') + '\r\n';
    const signed = await sign(message({ from: 'ceo@good.example' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
    const bombs = Array.from({ length: 10 }, (_, i) => junk(100 + i, `${names}:from`)).join('');
    const before = w.sink.messages.length;
    const r = await sendMail(w.gw.port, { from: 'bounce@other.example', to: ['user@example.net'], message: bombs + fill + signed });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const m = (await w.sink.waitFor(before + 1)).at(-1)!;
    const ar = headerValue(m.raw, 'Authentication-Results') ?? '';
    assert.match(ar, /dkim=pass[^;]*header\.d=good\.example/, ar);
    assert.match(ar, /dkim=policy \(10 signatures with more than 1000 signed header names not verified\)/, ar);
    assert.doesNotMatch(ar, /header\.d=junk1\d\d\.example/, 'none of them verified');
    const d = w.gw.decisions().at(-1)! as { auth: { dkim: Array<{ result: string; reason: string }> } };
    assert.match(d.auth.dkim.find((s) => s.result === 'policy')?.reason ?? '', /10 signature\(s\) listing more than 1000 header names in h= not verified \(auth\.maxDkimHeaderNames 1000\)/);
    assert.match(await metrics(w), /^postern_message_limits_total\{limit="dkim-header-names"\} 1$/m);
  });
});
