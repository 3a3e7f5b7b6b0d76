/**
 * Two From headers used to bypass DMARC (issue 10): mailauth reports dmarc=permerror
 * (multiple-from-fields / multiple-author-domains), which the DMARC rules do not match, so the
 * message was delivered while a single spoofed From of the same p=reject domain is refused.
 * The default policy now refuses every variant (rule multiple-from, 550 5.7.1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

/** A message whose From lines are exactly `from` (CRLF-joined unless they carry their own separators). */
function withFroms(from: string): string {
  const plain = message({ from: 'placeholder@other.example', subject: 'Your account' });
  return plain.replace(/^From: <placeholder@other\.example>\r\n/m, from);
}

describe('more than one From (good.example publishes p=reject)', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ zone: { 'evil.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] } });
  });
  after(() => w.close());

  const variants: Array<[string, string, { fields: number; addresses: number }]> = [
    ['the same p=reject domain twice', 'From: <ceo@good.example>\r\nFrom: <billing@good.example>\r\n', { fields: 2, addresses: 2 }],
    ['the p=reject domain first, another second', 'From: <ceo@good.example>\r\nFrom: <x@evil.example>\r\n', { fields: 2, addresses: 2 }],
    ['another domain first, the p=reject domain second', 'From: <x@evil.example>\r\nFrom: <ceo@good.example>\r\n', { fields: 2, addresses: 2 }],
    ['one From with two addresses', 'From: ceo@good.example, x@evil.example\r\n', { fields: 1, addresses: 2 }],
    ['one From with two addresses of the p=reject domain', 'From: <ceo@good.example>, <billing@good.example>\r\n', { fields: 1, addresses: 2 }],
    ['two From lines split by a bare CR', 'From: <ceo@good.example>\rFrom: <x@evil.example>\r\n', { fields: 2, addresses: 2 }],
  ];
  for (const [what, from, count] of variants) {
    it(`${what}: 550 5.7.1 (rule multiple-from), nothing relayed, counted, in the decision line`, async () => {
      const before = w.sink.messages.length;
      // SPF passes for evil.example: only the From fields are wrong
      const r = await sendMail(w.gw.port, { from: 'x@evil.example', to: ['user@example.net'], message: withFroms(from) });
      assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
      assert.match(r.data.text, /^5\.7\.1 Rejected: the message has more than one From field or author \(RFC 5322 section 3\.6\) \(\w+\)$/);
      assert.equal(w.sink.messages.length, before);
      const d = w.gw.decisions().at(-1)!;
      assert.equal(d.rule, 'multiple-from');
      assert.equal(d.reason, 'multiple-from');
      assert.equal(d.action, 'reject');
      assert.deepEqual({ fields: d.from_fields, addresses: d.from_addresses }, count);
    });
  }

  it('the refusals are counted by rule and reason', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
    assert.match(metrics, /^postern_messages_total\{action="reject",rule="multiple-from",reason="multiple-from"\} 6$/m);
  });

  it('one From with one address of evil.example (SPF-aligned) is still delivered', async () => {
    const before = w.sink.messages.length;
    const r = await sendMail(w.gw.port, { from: 'x@evil.example', to: ['user@example.net'], message: withFroms('From: <x@evil.example>\r\n') });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    await w.sink.waitFor(before + 1);
    const last = w.gw.decisions().at(-1)!;
    assert.deepEqual({ fields: last.from_fields, addresses: last.from_addresses }, { fields: 1, addresses: 1 });
  });

  it('a rule may accept it instead (monitor the rule, or override it in an earlier file)', async () => {
    const lenient = await startWorld({
      zone: { 'evil.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] },
      policies: { '00-a.yaml': 'rules:\n  - name: allow-multi-from\n    match: { multiple_from: true }\n    action: tag\n' },
    });
    try {
      const r = await sendMail(lenient.gw.port, { from: 'x@evil.example', to: ['user@example.net'], message: withFroms('From: <x@evil.example>\r\nFrom: <y@evil.example>\r\n') });
      assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
      const [m] = await lenient.sink.waitFor(1);
      assert.match(m!.raw.toString('latin1'), /^X-Postern-Verdict: tag; rule=allow-multi-from\r\n/m);
    } finally {
      await lenient.close();
    }
  });
});
