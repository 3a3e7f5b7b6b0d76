/**
 * DMARC failure reports, the pure parts: which messages fo= asks about (trigger.ts), what of
 * the header section a report may show (redact.ts), and the feedback fields (arf.ts). The
 * whole path over SMTP is test/integration/dmarc-failure-reports.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DkimSignatureFacts, DmarcPublished, Facts } from '../../../src/core/facts.ts';
import { feedbackFields } from '../../../src/reports/failure/arf.ts';
import { createRedactor, headerSection, isReportMessage, redactAddress, redactHeader, redactText } from '../../../src/reports/failure/redact.ts';
import { failureTrigger, foOptions } from '../../../src/reports/failure/trigger.ts';
import type { TransactionOutcome } from '../../../src/reports/row.ts';

const published = (over: Partial<DmarcPublished> = {}): DmarcPublished => ({
  domain: 'bank.example', p: 'reject', sp: null, np: null, adkim: 'r', aspf: 'r', testing: false, psd: 'u', fo: null, discovery: 'treewalk',
  rua: [], ruf: ['mailto:ruf@bank.example'], ...over,
});
const sig = (over: Partial<DkimSignatureFacts> = {}): DkimSignatureFacts => ({
  result: 'fail', domain: 'bank.example', selector: 's1', algorithm: 'rsa-sha256', aligned: true, reason: 'signature did not verify', ...over,
});

function outcome(o: {
  result?: 'pass' | 'fail' | 'temperror'; spfAligned?: boolean; dkimAligned?: boolean; spf?: 'pass' | 'fail' | 'none';
  dkim?: DkimSignatureFacts[]; published?: Partial<DmarcPublished>; action?: TransactionOutcome['action'];
} = {}): TransactionOutcome {
  const facts: Facts = {
    client: { ip: '192.0.2.7', ptr: null, helo: 'mta.example', tls: false, tier: 'neutral' },
    envelope: { sender: 'j.doe@mailer.example', senderDomain: 'mailer.example', recipients: ['bob@example.net'] },
    spf: { result: o.spf ?? 'none', domain: 'mailer.example', identity: 'mailfrom', reason: '' },
    dkim: o.dkim ?? [],
    dmarc: {
      result: o.result ?? 'fail', domain: 'bank.example', policy: 'reject', spfAligned: o.spfAligned ?? false, dkimAligned: o.dkimAligned ?? false,
      reason: '', published: published(o.published),
    },
  };
  return { facts, action: o.action ?? 'reject', rule: 'dmarc-reject' };
}

describe('fo= options (RFC 9989 §4.7)', () => {
  it('defaults to 0, ignores unknown values, reads a colon-separated list', () => {
    assert.deepEqual([...foOptions(null)], ['0']);
    assert.deepEqual([...foOptions('x:y')], ['0']);
    assert.deepEqual([...foOptions('1:d')], ['1', 'd']);
    assert.deepEqual([...foOptions(' S : 0 ')], ['s', '0']);
  });
});

describe('which messages are reported', () => {
  const kind = (o: TransactionOutcome): string | null => failureTrigger(o)?.authFailure ?? null;

  it('fo=0: a DMARC failure, not a pass', () => {
    assert.equal(kind(outcome()), 'dmarc');
    assert.equal(kind(outcome({ result: 'pass', spfAligned: true })), null);
  });

  it('fo=1: any mechanism without an aligned pass, also when DMARC passed on the other', () => {
    assert.equal(kind(outcome({ result: 'pass', spfAligned: true, published: { fo: '1' } })), 'dmarc');
    assert.equal(kind(outcome({ result: 'pass', spfAligned: true, dkimAligned: true, published: { fo: '1' } })), null);
  });

  it('fo=d: a DKIM signature that failed, aligned or not (bodyhash when the body hash did not match); fo=s: an SPF fail', () => {
    const unaligned = sig({ aligned: false, domain: 'esp.example' });
    assert.equal(kind(outcome({ result: 'pass', spfAligned: true, dkim: [unaligned], published: { fo: 'd' } })), 'signature');
    assert.equal(kind(outcome({ result: 'pass', spfAligned: true, dkim: [sig({ reason: 'body hash did not verify' })], published: { fo: 'd' } })), 'bodyhash');
    assert.equal(kind(outcome({ result: 'pass', dkimAligned: true, spf: 'fail', published: { fo: 's' } })), 'spf');
    assert.equal(kind(outcome({ result: 'pass', dkimAligned: true, spf: 'none', published: { fo: 's' } })), null);
    // d alone does not ask for DMARC reports
    assert.equal(kind(outcome({ published: { fo: 'd' } })), null);
  });

  it('at most one report a message: the DMARC one first, naming the aligned signature that failed', () => {
    const t = failureTrigger(outcome({ dkim: [sig({ aligned: false, domain: 'esp.example' }), sig()], spf: 'fail', published: { fo: '0:d:s' } }));
    assert.equal(t?.authFailure, 'dmarc');
    assert.equal(t?.signature?.domain, 'bank.example');
    assert.equal(t?.policyDomain, 'bank.example');
  });

  it('nothing without a mailto: ruf=, with psd=y (RFC 9991 §2), for a tempfail or without a final DMARC result', () => {
    assert.equal(failureTrigger(outcome({ published: { ruf: [] } })), null);
    assert.equal(failureTrigger(outcome({ published: { ruf: ['https://bank.example/ruf'] } })), null);
    assert.equal(failureTrigger(outcome({ published: { psd: 'y' } })), null);
    assert.equal(failureTrigger(outcome({ action: 'tempfail' })), null);
    assert.equal(failureTrigger(outcome({ result: 'temperror' })), null);
  });

  it('at most 4 destinations, mailto: only, deduplicated', () => {
    const ruf = ['mailto:a@x.example', 'https://x.example', 'mailto:a@x.example', 'mailto:b@x.example', 'mailto:c@x.example', 'mailto:d@x.example', 'mailto:e@x.example'];
    assert.deepEqual(failureTrigger(outcome({ published: { ruf } }))?.destinations, ['a@x.example', 'b@x.example', 'c@x.example', 'd@x.example']);
  });
});

describe('the header section a report copies', () => {
  it('stops at the blank line, across chunk boundaries, and copies', () => {
    const chunks = [Buffer.from('From: a@b.example\r\nSubject: hi\r'), Buffer.from('\n\r'), Buffer.from('\nbody text\r\n')];
    const head = headerSection(chunks);
    assert.equal(head?.toString(), 'From: a@b.example\r\nSubject: hi\r\n');
    chunks[0]!.fill(0);
    assert.equal(head?.toString(), 'From: a@b.example\r\nSubject: hi\r\n', 'not a view of the message');
  });

  it('is cut after the last whole line within the limit; none when the message has no header', () => {
    const long = `From: a@b.example\r\nX-Long: ${'x'.repeat(100)}\r\nSubject: s\r\n\r\nbody`;
    assert.equal(headerSection([Buffer.from(long)], 60)?.toString(), 'From: a@b.example\r\n');
    assert.equal(headerSection([Buffer.from('\r\nbody only')]), null);
    assert.equal(headerSection([]), null);
  });
});

describe('redaction (RFC 6590 style: local parts replaced)', () => {
  const redact = (header: string, omit: string[] = []): ReturnType<typeof redactHeader> =>
    redactHeader(Buffer.from(header, 'latin1'), { omit: new Set(omit), redact: createRedactor(Buffer.alloc(16)) });

  it('address fields keep only their addresses, local parts replaced; one address, one token', () => {
    const r = redact('From: "Doe, Jane" <Jane.Doe@Bank.Example> (CEO)\r\nTo: team: bob@example.net, "x y"@example.net;\r\nCc: jane.doe@bank.example\r\nReturn-Path: <>\r\nBcc: undisclosed\r\n');
    const lines = r.text.split('\r\n');
    assert.match(lines[0]!, /^From: <(redacted-[0-9a-f]{8})@bank\.example>$/);
    assert.match(lines[1]!, /^To: <redacted-[0-9a-f]{8}@example\.net>, <redacted-[0-9a-f]{8}@example\.net>$/);
    assert.equal(lines[2], lines[0]!.replace('From:', 'Cc:'), 'the same local part, any case, the same token');
    assert.equal(lines[3], 'Return-Path: <>');
    assert.equal(lines[4], 'Bcc: undisclosed-recipients:;');
    assert.ok(!/jane|doe|bob|"x y"|CEO/i.test(r.text), r.text);
  });

  it('other fields keep their text: addresses redacted, tags kept, links defanged, Message-ID as it is', () => {
    const r = redact([
      'Authentication-Results: mx.example; spf=pass smtp.mailfrom=j.doe@bank.example; dkim=pass header.i=@bank.example',
      'DKIM-Signature: v=1; a=rsa-sha256; d=bank.example; s=s1; i=@bank.example; b=abc/+=',
      'Received: from a.example by b.example',
      '\tfor <bob@example.net>; Mon, 23 Nov 2026 10:00:00 +0000',
      'Message-ID: <jane.doe.123@bank.example>',
      'Subject: Call me at http://bank.example/jane or jane@bank.example',
      '',
    ].join('\r\n'));
    assert.match(r.text, /smtp\.mailfrom=redacted-[0-9a-f]{8}@bank\.example; dkim=pass header\.i=@bank\.example\r\n/);
    assert.match(r.text, /; i=@bank\.example; b=abc\/\+=\r\n/);
    assert.match(r.text, /^\tfor <redacted-[0-9a-f]{8}@example\.net>; Mon/m);
    assert.match(r.text, /^Message-ID: <jane\.doe\.123@bank\.example>\r\n/m);
    assert.match(r.subject ?? '', /^Call me at hxxp:\/\/bank\.example\/jane or redacted-[0-9a-f]{8}@bank\.example$/);
  });

  it('omits the fields asked (any case), drops lines that belong to no field, writes 7-bit', () => {
    const r = redact('not a field line\r\n continuation of nothing\r\nSubject: Gr\xfc\xdfe\r\nX-Secret: 1\r\nDate: today\r\n', ['x-secret']);
    assert.equal(r.text, 'Subject: Gr??e\r\nDate: today\r\n');
    assert.equal(redact('Subject: hi\r\n', ['subject']).subject, null);
  });

  it('a report is recognised as one (no report about a report)', () => {
    assert.equal(isReportMessage(Buffer.from('From: a@b.example\r\nContent-Type: multipart/report;\r\n report-type=feedback-report; boundary="x"\r\n')), true);
    assert.equal(isReportMessage(Buffer.from('From: a@b.example\r\nContent-Type: multipart/mixed; boundary="x"\r\n')), false);
  });

  it('tokens differ between reports: no pseudonym links two of them', () => {
    assert.notEqual(redactAddress('bob@example.net', createRedactor()), redactAddress('bob@example.net', createRedactor()));
    assert.equal(redactAddress('', createRedactor()), '');
    assert.equal(redactText('mailto:bob@example.net', createRedactor(Buffer.alloc(16))), redactText('mailto:bob@example.net', createRedactor(Buffer.alloc(16))));
  });
});

describe('feedback fields (RFC 5965, RFC 6591, RFC 9991 §4)', () => {
  const env = { hostname: 'mx.example.net', userAgent: 'Postern/1.0.0' };
  const fields = (o: TransactionOutcome, spfRecord: string | null): string => {
    const trigger = failureTrigger(o)!;
    const redact = createRedactor();
    return feedbackFields({ trigger, facts: o.facts, action: o.action, arrival: Date.parse('2026-11-23T10:00:00Z'), header: { text: '', subject: null }, redact, spfRecord, envelopeId: 'QQ314159' }, env);
  };

  it('names the aligned DKIM signature that failed and the SPF record that failed', () => {
    const text = fields(outcome({ dkim: [sig()], spf: 'fail' }), 'v=spf1 ip4:192.0.2.0/24 -all');
    assert.match(text, /^DKIM-Domain: bank\.example\r\nDKIM-Identity: @bank\.example\r\nDKIM-Selector: s1\r\n/m);
    assert.match(text, /^SPF-DNS: txt : mailer\.example : v=spf1 ip4:192\.0\.2\.0\/24 -all\r\n/m);
    assert.match(text, /^Original-Envelope-Id: QQ314159\r\n/m);
    assert.match(text, /^Arrival-Date: Mon, 23 Nov 2026 10:00:00 \+0000\r\n/m);
    assert.ok(text.split('\r\n').every((l) => l.length <= 78), 'folded');
    assert.match(text.replace(/\r\n /g, ' '), /^Authentication-Results: mx\.example\.net; dmarc=fail \(p=reject\) header\.from=bank\.example; spf=fail smtp\.mailfrom=mailer\.example; dkim=fail header\.d=bank\.example header\.s=s1\r\n/m);
  });

  it('has neither without such a failure; Delivery-Result follows what Postern did', () => {
    const text = fields(outcome({ action: 'quarantine' }), null);
    assert.doesNotMatch(text, /DKIM-|SPF-DNS/);
    assert.match(text, /^Delivery-Result: spam\r\n/m);
    assert.match(fields(outcome({ action: 'accept' }), null), /^Delivery-Result: delivered\r\n/m);
  });
});
