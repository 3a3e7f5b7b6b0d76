/**
 * A message without a From field (issue 10 audit): DMARC has no author domain to check
 * (dmarc=permerror no-author-domain), so mail whose envelope sender is a p=reject domain that
 * SPF refuses was delivered, and a Postfix behind us adding the missing From
 * (local_header_rewrite_clients matching Postern) would show that sender as the author. The
 * default policy refuses it (rule no-from, 550 5.7.1). A first line starting with whitespace
 * used to move the sender's whole header into the body, giving the same message without From:
 * it is refused before any check (550 5.6.0).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

/** bank.example: SPF -all and DMARC p=reject, so neither SPF nor DMARC lets its name through. */
const BANK = { 'bank.example': [{ TXT: 'v=spf1 -all' }], '_dmarc.bank.example': [{ TXT: 'v=DMARC1; p=reject' }] };

/** message() without its From line. */
function withoutFrom(): string {
  return message({ from: 'placeholder@other.example', subject: 'pay now' }).replace(/^From: <placeholder@other\.example>\r\n/m, '');
}

const metrics = async (w: World): Promise<string> => (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();

describe('a message without From (bank.example: SPF -all, DMARC p=reject)', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ zone: BANK });
  });
  after(() => w.close());

  const variants: Array<[string, () => string]> = [
    ['no From field at all', withoutFrom],
    ['an empty header section (the message starts with its blank line)', () => '\r\nFrom: <ceo@bank.example>\r\n\r\nhi\r\n'],
  ];
  for (const [what, raw] of variants) {
    it(`${what}, MAIL FROM:<ceo@bank.example>: 550 5.7.1 (rule no-from), nothing relayed, in the decision line`, async () => {
      const before = w.sink.messages.length;
      const r = await sendMail(w.gw.port, { from: 'ceo@bank.example', to: ['user@example.net'], message: raw() });
      assert.equal(r.mail.code, 250, 'SPF fail alone is not refused at MAIL by the default policy');
      assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
      assert.match(r.data.text, /^5\.7\.1 Rejected: the message has no From field \(RFC 5322 section 3\.6\) \(\w+\)$/);
      assert.equal(w.sink.messages.length, before);
      const d = w.gw.decisions().at(-1)!;
      assert.deepEqual([d.rule, d.reason, d.action, d.from_fields], ['no-from', 'from-count', 'reject', 0]);
    });
  }

  it('a first line starting with whitespace, then a spoofed From: 550 5.6.0 before any policy rule, nothing relayed', async () => {
    for (const lead of [' x', '\tReceived: forged', ' by mx.postern.test (Postern) with ESMTPS id trusted']) {
      const before = w.sink.messages.length;
      const r = await sendMail(w.gw.port, { from: 'ceo@bank.example', to: ['user@example.net'], message: `${lead}\r\n${message({ from: 'ceo@bank.example' })}` });
      assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
      assert.match(r.data.text, /^5\.6\.0 Message header must start with a field name, not with whitespace \(RFC 5322 section 2\.2\) \(\w+\)$/);
      assert.equal(w.sink.messages.length, before, JSON.stringify(lead));
      const d = w.gw.decisions().at(-1)!;
      assert.deepEqual([d.reason, d.action], ['bad-header', 'reject']);
    }
  });

  it('both refusals are counted by rule and reason', async () => {
    const text = await metrics(w);
    assert.match(text, /^postern_messages_total\{action="reject",rule="no-from",reason="from-count"\} 2$/m);
    assert.match(text, /^postern_messages_total\{action="reject",rule="",reason="bad-header"\} 3$/m);
  });

  it('one From of bank.example is still DMARC\'s to judge (550 by dmarc-reject); whitespace after the first line is a fold', async () => {
    const r = await sendMail(w.gw.port, { from: 'ceo@bank.example', to: ['user@example.net'], message: message({ from: 'ceo@bank.example', headers: ['X-Folded: a', ' b'] }) });
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    assert.equal(w.gw.decisions().at(-1)!.rule, 'dmarc-reject');
  });

  it('from_count in an operator\'s rule: a tag rule lets it through instead', async () => {
    const lenient = await startWorld({
      zone: BANK,
      policies: { '00-a.yaml': 'rules:\n  - name: allow-no-from\n    match: { from_count: 0 }\n    action: tag\n' },
    });
    try {
      const r = await sendMail(lenient.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: withoutFrom() });
      assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
      const [m] = await lenient.sink.waitFor(1);
      assert.match(m!.raw.toString('latin1'), /^X-Postern-Verdict: tag; rule=allow-no-from\r\n/m);
    } finally {
      await lenient.close();
    }
  });
});
