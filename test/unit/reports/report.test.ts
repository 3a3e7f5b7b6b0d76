/**
 * Report building (RFC 9990 §2): every row shape the collector makes is schema-valid XML
 * (xmllint against ../shared/conformance/dmarc-2.0.xsd), the counts add up, large reports are
 * split into parts that are each valid, and the same rows always give the same report-ids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { DmarcPublished } from '../../../src/core/facts.ts';
import { buildReports } from '../../../src/reports/report.ts';
import { collectedFrom, encodeRow, type ReportRow } from '../../../src/reports/row.ts';
import { keySlot } from '../../../src/reports/slot.ts';
import { mailtoAddresses } from '../../../src/reports/destinations.ts';
import { assertSchemaValid } from '../../harness/reports.ts';

const published: DmarcPublished = {
  domain: 'example.com', p: 'reject', sp: 'quarantine', np: 'reject', adkim: 's', aspf: 'r', testing: true, psd: 'u', fo: '1', discovery: 'treewalk',
  rua: ['mailto:dmarc@example.com'], ruf: [],
};
const settings = { orgName: 'Org <&> "quoted"', email: 'reports@mx.example.net', extraContact: 'call +1 555', maxReportBytes: 5_000_000, generator: 'Postern' };
const row = (over: Partial<ReportRow>): ReportRow => ({
  sourceIp: '192.0.2.1', disposition: 'none', dkim: 'fail', spf: 'fail', reasons: [], headerFrom: 'example.com', envelopeFrom: 'example.com',
  envelopeTo: 'example.net', dkimResults: [], spfResult: { domain: 'example.com', scope: 'mfrom', result: 'softfail' }, ...over,
});

describe('aggregate report XML', () => {
  it('every row shape is valid against the RFC 9990 schema, and counts add up', async () => {
    const rows = new Map<string, number>([
      [encodeRow(row({ disposition: 'pass', dkim: 'pass', dkimResults: [{ domain: 'example.com', selector: 's1', result: 'pass' }, { domain: 'x.test', selector: 'a\u0001b<', result: 'permerror' }] })), 7],
      [encodeRow(row({ sourceIp: '2001:db8::1', reasons: [{ type: 'policy_test_mode', comment: 't=y' }, { type: 'local_policy', comment: 'rule allow-partners' }] })), 2],
      [encodeRow(row({ disposition: 'reject', envelopeFrom: '', envelopeTo: '', spfResult: { domain: 'helo.example.com', scope: null, result: 'none' } })), 1],
      [encodeRow(row({ disposition: 'quarantine', spfResult: null })), 3],
    ]);
    const [part, ...more] = buildReports({ domain: 'example.com', published, begin: Date.UTC(2026, 10, 23), end: Date.UTC(2026, 10, 24), rows }, settings);
    assert.equal(more.length, 0);
    await assertSchemaValid(part!.xml);
    assert.equal(gunzipSync(part!.gzip).toString('utf8'), part!.xml);
    assert.equal(part!.messages, 13);
    assert.equal(part!.filename, 'mx.example.net!example.com!1795392000!1795478399.xml.gz');
    assert.match(part!.xml, /<begin>1795392000<\/begin>\s*<end>1795478399<\/end>/);
    assert.match(part!.xml, /<org_name>Org &lt;&amp;&gt; &quot;quoted&quot;<\/org_name>/);
    assert.match(part!.xml, /<selector>ab&lt;<\/selector>/, 'control characters removed, markup escaped');
    assert.match(part!.xml, /<sp>quarantine<\/sp>\s*<np>reject<\/np>\s*<adkim>s<\/adkim>\s*<aspf>r<\/aspf>\s*<discovery_method>treewalk<\/discovery_method>\s*<fo>1<\/fo>\s*<testing>y<\/testing>/);
    // the biggest count first: a reader sees the main sources at the top
    assert.match(part!.xml, /<record>\s*<row>\s*<source_ip>192\.0\.2\.1<\/source_ip>\s*<count>7<\/count>/);
    const again = buildReports({ domain: 'example.com', published, begin: Date.UTC(2026, 10, 23), end: Date.UTC(2026, 10, 24), rows }, settings);
    assert.equal(again[0]!.reportId, part!.reportId, 'deterministic: a retry sends the same report-id');
  });

  it('splits records over several valid reports when one would exceed maxReportBytes', async () => {
    const rows = new Map<string, number>();
    for (let i = 0; i < 300; i++) rows.set(encodeRow(row({ sourceIp: `198.51.100.${i % 250}`, envelopeTo: `d${i}.example.net`, dkimResults: [{ domain: `s${i}.example`, selector: `sel${i * 7919}`, result: 'fail' }] })), i + 1);
    const parts = buildReports({ domain: 'example.com', published, begin: 0, end: 86_400_000, rows }, { ...settings, maxReportBytes: 4_000 });
    assert.ok(parts.length > 1, `${parts.length} part(s)`);
    assert.ok(parts.every((p) => p.gzip.length <= 4_000), parts.map((p) => p.gzip.length).join(','));
    assert.equal(parts.reduce((n, p) => n + p.records, 0), 300);
    assert.equal(parts.reduce((n, p) => n + p.messages, 0), (300 * 301) / 2);
    assert.equal(new Set(parts.map((p) => p.reportId)).size, parts.length);
    // RFC 9990: the file name's unique-id (1*(ALPHA / DIGIT)) and the Report-ID are identical
    for (const p of parts) {
      assert.match(p.reportId, /^[A-Za-z0-9]+$/);
      assert.equal(p.filename, `mx.example.net!example.com!0!86399!${p.reportId}.xml.gz`);
      assert.match(p.xml, new RegExp(`<report_id>${p.reportId}</report_id>`));
    }
    for (const p of [parts[0]!, parts.at(-1)!]) await assertSchemaValid(p.xml);
  });
});

describe('report helpers', () => {
  it('keySlot is Redis Cluster\'s CRC16 slot, honouring hash tags', () => {
    assert.equal(keySlot('123456789'), 12739); // CRC16/XMODEM check value 0x31C3
    assert.equal(keySlot('postern:dmarc:{example.com}:rows:1'), keySlot('example.com'));
    assert.equal(keySlot('a{}b'), keySlot('a{}b')); // empty tag: the whole key
  });

  it('mailtoAddresses keeps mailto: URIs only, drops !size, decodes, dedupes and caps', () => {
    assert.deepEqual(mailtoAddresses([
      'mailto:dmarc@Example.COM!10m', 'https://x.example/r', 'mailto:a%2Bb@x.example?subject=hi', 'mailto:dmarc@example.com', 'mailto:bad address@x',
      'mailto:c@x.example', 'mailto:d@x.example', 'mailto:e@x.example',
    ]), ['dmarc@example.com', 'a+b@x.example', 'c@x.example', 'd@x.example']);
  });
});

describe('override reasons in rows', () => {
  const published: DmarcPublished = { domain: 'bank.example', p: 'reject', sp: null, np: null, adkim: 'r', aspf: 'r', testing: false, psd: 'u', fo: null, discovery: 'treewalk', rua: ['mailto:dmarc@bank.example'], ruf: [] };
  const facts = {
    client: { ip: '192.0.2.7', ptr: null, helo: 'lists.example', tls: false, tier: 'neutral' as const },
    envelope: { sender: 'bounce@lists.example', senderDomain: 'lists.example', recipients: ['user@example.net'] },
    spf: { result: 'pass' as const, domain: 'lists.example', identity: 'mailfrom' as const, reason: '' },
    message: { fromDomain: 'bank.example', messageId: null, size: 100, firstSeenSeconds: 0 },
    dkim: [],
    arc: { result: 'pass' as const, reason: '' },
    dmarc: { result: 'fail' as const, domain: 'bank.example', policy: 'reject' as const, spfAligned: false, dkimAligned: false, reason: '', published },
  };

  it('a message accepted on a trusted ARC sealer is reported as trusted_forwarder with the policy\'s comment', () => {
    const got = collectedFrom({
      facts, action: 'accept', rule: 'trusted-sealers',
      override: { type: 'trusted_forwarder', by: 'arc', policy: 'reject', rule: 'trusted-sealers', comment: 'arc=pass as[1].d=lists.example' },
    });
    assert.equal(got?.row.disposition, 'none');
    assert.deepEqual(got?.row.reasons, [{ type: 'trusted_forwarder', comment: 'arc=pass as[1].d=lists.example' }]);
  });

  it('without an override from the policy, a weaker disposition is local_policy naming the rule', () => {
    const got = collectedFrom({ facts, action: 'accept', rule: 'allow-partners' });
    assert.deepEqual(got?.row.reasons, [{ type: 'local_policy', comment: 'rule allow-partners' }]);
  });
});

describe('override reasons under t=y (RFC 9990 §2.1: compared with the policy published)', () => {
  // as auth/message.ts builds them: dmarc.policy is what mailauth applies after the t=y
  // downgrade, dmarc.applied the tag as published
  const factsFor = (p: 'reject' | 'quarantine' | 'none', result: 'fail' | 'pass' = 'fail') => {
    const published: DmarcPublished = { domain: 'test.example', p, sp: null, np: null, adkim: 'r', aspf: 'r', testing: true, psd: 'u', fo: null, discovery: 'treewalk', rua: ['mailto:dmarc@test.example'], ruf: [] };
    const downgraded = ({ reject: 'quarantine', quarantine: 'none', none: 'none' } as const)[p];
    return {
      client: { ip: '192.0.2.9', ptr: null, helo: 'mta.example', tls: false, tier: 'neutral' as const },
      envelope: { sender: 'a@test.example', senderDomain: 'test.example', recipients: ['user@example.net'] },
      spf: { result: 'fail' as const, domain: 'test.example', identity: 'mailfrom' as const, reason: '' },
      message: { fromDomain: 'test.example', messageId: null, size: 100, firstSeenSeconds: 0 },
      dkim: [],
      arc: { result: 'none' as const, reason: '' },
      dmarc: { result, domain: 'test.example', policy: downgraded, applied: { tag: 'p' as const, value: p }, spfAligned: result === 'pass', dkimAligned: false, reason: '', published },
    };
  };
  const testMode = (from: string, to: string) => ({ type: 'policy_test_mode', comment: `t=y: ${from} applied as ${to}` });

  it('p=reject t=y, quarantined as the test mode asks: policy_test_mode alone', () => {
    const got = collectedFrom({ facts: factsFor('reject'), action: 'quarantine', rule: 'dmarc-quarantine' });
    assert.equal(got?.row.disposition, 'quarantine');
    assert.deepEqual(got?.row.reasons, [testMode('reject', 'quarantine')]);
  });

  it('p=quarantine t=y, delivered: policy_test_mode alone', () => {
    const got = collectedFrom({ facts: factsFor('quarantine'), action: 'accept', rule: '' });
    assert.equal(got?.row.disposition, 'none');
    assert.deepEqual(got?.row.reasons, [testMode('quarantine', 'none')]);
  });

  it('p=reject t=y, delivered by a rule: the test mode and then local_policy', () => {
    const got = collectedFrom({ facts: factsFor('reject'), action: 'accept', rule: 'allow-partners' });
    assert.deepEqual(got?.row.reasons, [testMode('reject', 'quarantine'), { type: 'local_policy', comment: 'rule allow-partners' }]);
  });

  it('p=reject t=y, rejected anyway: the published policy was applied, no reason', () => {
    const got = collectedFrom({ facts: factsFor('reject'), action: 'reject', rule: 'dmarc-reject' });
    assert.deepEqual(got?.row.reasons, []);
  });

  it('p=quarantine t=y, rejected by a rule: local_policy only', () => {
    const got = collectedFrom({ facts: factsFor('quarantine'), action: 'reject', rule: 'strict' });
    assert.deepEqual(got?.row.reasons, [{ type: 'local_policy', comment: 'rule strict' }]);
  });

  it('p=none t=y, delivered, and a DMARC pass: no reason', () => {
    assert.deepEqual(collectedFrom({ facts: factsFor('none'), action: 'accept', rule: '' })?.row.reasons, []);
    assert.deepEqual(collectedFrom({ facts: factsFor('reject', 'pass'), action: 'accept', rule: 'dmarc-pass' })?.row.reasons, []);
  });
});
