/**
 * DMARC failure reports (RFC 9991) at the SMTP boundary: a spoofed message through the
 * gateway still gets its 550, and the relay (the backend sink) receives one report for the
 * domain's ruf= address: a multipart/report with the ARF fields RFC 9991 asks for and the
 * header section only, every local part redacted. Off by default; signed when a key is set;
 * capped per reported domain under a burst; nothing to a destination that did not authorise
 * itself; a slow or dead relay neither delays nor changes the reply.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Zone } from '../harness/dns-server.ts';
import { field, parseFailureReport, type FailureReportMail } from '../harness/failure-reports.ts';
import { dkimKey, message } from '../harness/mail.ts';
import { scrape } from '../harness/metrics.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { proxyV1, startWorld, type World } from '../harness/world.ts';

const REPORTER = 'dmarc-reports@postern.test';
const signing = dkimKey('rsa', 1024);

/** spoof.example rejects and wants failure reports at home; ext-*.example at a third party, one of them authorised. */
const ZONE: Zone = {
  'spoof.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.spoof.example': [{ TXT: 'v=DMARC1; p=reject; ruf=mailto:ruf@spoof.example; rua=mailto:agg@spoof.example' }],
  'ext-ok.example': [{ TXT: 'v=spf1 -all' }],
  '_dmarc.ext-ok.example': [{ TXT: 'v=DMARC1; p=reject; ruf=mailto:forensic@collector.example' }],
  'ext-ok.example._report._dmarc.collector.example': [{ TXT: 'v=DMARC1' }],
  'ext-no.example': [{ TXT: 'v=spf1 -all' }],
  '_dmarc.ext-no.example': [{ TXT: 'v=DMARC1; p=reject; ruf=mailto:forensic@collector.example' }],
  // fo=1: any mechanism without an aligned pass is reported, even when DMARC passed on the other
  'fo1.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
  '_dmarc.fo1.example': [{ TXT: 'v=DMARC1; p=reject; fo=1; ruf=mailto:ruf@fo1.example' }],
  'r1._domainkey.postern.test': [{ TXT: signing.record }],
};

/** A spoofed message full of personal data: names, addresses, a body. */
function spoofed(from = 'jane.doe@spoof.example'): string {
  return [
    'Received: from laptop.home.example (laptop.home.example [198.51.100.77])',
    '\tby smtp.home.example with ESMTPSA id 4Ln7Qw4fnvz6Bq',
    '\tfor <bob.jones@example.net>; Mon, 23 Nov 2026 09:59:58 +0000',
    `From: "Jane Doe" <${from}>`,
    'To: "Bob Jones" <bob.jones@example.net>, carol@example.net',
    'Cc: Dave <dave.smith@partner.example>',
    'Subject: Salary review for bob.jones@example.net, see https://evil.example/x',
    'Date: Mon, 23 Nov 2026 10:00:00 +0000',
    'Message-ID: <spoof-4711@spoof.example>',
    'List-Unsubscribe: <https://spoof.example/u?who=bob.jones@example.net>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'SECRET-BODY-TEXT: the numbers for Bob are attached.',
    '',
  ].join('\r\n');
}

const reportsAt = (sink: Sink): FailureReportMail[] => sink.messages.filter((m) => m.mailFrom === REPORTER).map(parseFailureReport);

async function outcomes(w: World): Promise<Record<string, number>> {
  const s = await scrape(w.gw.httpPort);
  const out: Record<string, number> = {};
  for (const o of ['sent', 'rate-limited', 'queue-full', 'refused', 'failed']) out[o] = s.get(`postern_dmarc_failure_reports_total{outcome="${o}"}`) ?? 0;
  return out;
}

const waitOutcomes = (w: World, expected: Record<string, number>): Promise<void> => eventually(async () => {
  const now = await outcomes(w);
  return Object.entries(expected).every(([k, v]) => now[k] === v);
}, `failure report outcomes ${JSON.stringify(expected)}`);

function worldWith(failure: Record<string, unknown> | null, extra: Partial<ConfigInput> = {}): Promise<World> {
  const dmarc = { email: REPORTER, ...(failure ? { failure: { enabled: true, ratePerMinute: 600, ...failure } } : {}), ...extra.reports?.dmarc };
  return startWorld({ zone: ZONE, config: { hostname: 'mx.postern.test', proxyProtocol: { trusted: ['127.0.0.1/32'] }, ...extra, reports: { dmarc } } });
}

async function sendSpoofed(w: World, from = 'jane.doe@spoof.example'): Promise<void> {
  const r = await sendMail(w.gw.port, { from: 'alice.smith@mailer.example', to: ['bob.jones@example.net', 'carol@example.net'], message: spoofed(from), preface: proxyV1('203.0.113.50') });
  assert.equal(r.data?.code, 550, JSON.stringify(r));
  // the reply names the domain whose record applied: spoof.example for its subdomains too
  const domain = from.slice(from.indexOf('@') + 1).replace(/^.*\.spoof\.example$/, 'spoof.example');
  assert.match(r.data.text, new RegExp(`^5\\.7\\.1 Rejected by DMARC policy: ${domain.replace(/\./g, '\\.')} publishes p=reject and the message is not authenticated \\(\\w+\\)$`));
}

describe('DMARC failure reports (RFC 9991)', () => {
  const worlds: World[] = [];
  const sinks: Sink[] = [];
  after(async () => {
    for (const w of worlds) await w.close();
    for (const s of sinks) await s.close();
  });
  const world = async (failure: Record<string, unknown> | null, extra: Partial<ConfigInput> = {}): Promise<World> => {
    const w = await worldWith(failure, extra);
    worlds.push(w);
    return w;
  };

  it('a spoofed message still gets its 550; the ruf= address gets one report, ARF as RFC 9991 says, header only, redacted', async () => {
    const w = await world({});
    await sendSpoofed(w);
    await w.sink.waitFor(1);
    await waitOutcomes(w, { sent: 1 });
    const [report] = reportsAt(w.sink);
    assert.ok(report);
    assert.deepEqual(report.to, ['ruf@spoof.example']);
    assert.match(report.contentType, /^multipart\/report; report-type=feedback-report; boundary="[^"]+"$/);
    assert.deepEqual(report.parts.map((p) => p.contentType), ['text/plain', 'message/feedback-report', 'text/rfc822-headers']);
    assert.equal(headerOf(report, 'From'), REPORTER);
    assert.equal(headerOf(report, 'Auto-Submitted'), 'auto-generated');
    assert.match(report.subject ?? '', /^FW: Salary review for redacted-[0-9a-f]{8}@example\.net, see hxxps:\/\/evil\.example\/x$/);

    // message/feedback-report: RFC 5965 §3.1, RFC 6591 §3, RFC 9991 §4
    assert.equal(field(report, 'Feedback-Type'), 'auth-failure');
    assert.equal(field(report, 'Version'), '1');
    assert.match(field(report, 'User-Agent'), /^Postern\/\S+$/);
    assert.equal(field(report, 'Auth-Failure'), 'dmarc');
    assert.equal(field(report, 'Identity-Alignment'), 'dkim, spf');
    assert.equal(field(report, 'Delivery-Result'), 'reject');
    assert.equal(field(report, 'Source-IP'), '203.0.113.50');
    assert.equal(field(report, 'Reported-Domain'), 'spoof.example');
    assert.equal(field(report, 'Reporting-MTA'), 'dns; mx.postern.test');
    assert.match(field(report, 'Arrival-Date'), /^[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$/);
    assert.equal(field(report, 'Authentication-Results'), 'mx.postern.test; dmarc=fail (p=reject) header.from=spoof.example; spf=none smtp.mailfrom=mailer.example; dkim=none');
    const mailFrom = field(report, 'Original-Mail-From');
    assert.match(mailFrom, /^<redacted-[0-9a-f]{8}@mailer\.example>$/);
    const rcpts = report.feedback.get('Original-Rcpt-To') ?? [];
    assert.equal(rcpts.length, 2);
    for (const r of rcpts) assert.match(r, /^<redacted-[0-9a-f]{8}@example\.net>$/);

    // the header section, redacted: addresses, display names; the body never
    const header = report.header;
    assert.match(header, /^From: <redacted-[0-9a-f]{8}@spoof\.example>\r\n/m);
    assert.match(header, /^To: <redacted-[0-9a-f]{8}@example\.net>, <redacted-[0-9a-f]{8}@example\.net>\r\n/m);
    assert.match(header, /^Cc: <redacted-[0-9a-f]{8}@partner\.example>\r\n/m);
    assert.match(header, /^\tfor <redacted-[0-9a-f]{8}@example\.net>; Mon, 23 Nov 2026 09:59:58 \+0000\r\n/m);
    assert.match(header, /^Message-ID: <spoof-4711@spoof\.example>\r\n/m);
    assert.match(header, /^List-Unsubscribe: <hxxps:\/\/spoof\.example\/u\?who=redacted-[0-9a-f]{8}@example\.net>\r\n/m);
    // one person, one token: the envelope recipient and the To: address read the same
    const bob = /^To: <(redacted-[0-9a-f]{8})@example\.net>/m.exec(header)![1]!;
    assert.ok(rcpts.includes(`<${bob}@example.net>`));
    const text = report.raw.toString('latin1');
    for (const secret of ['jane', 'doe', 'bob', 'jones', 'carol', 'dave', 'smith', 'alice', 'SECRET-BODY', 'numbers for']) {
      assert.ok(!text.toLowerCase().includes(secret.toLowerCase()), `"${secret}" is in the report:\n${text}`);
    }
  });

  it('is DKIM-signed with reports.dmarc.signing when a key is set', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-ruf-'));
    const keyFile = path.join(dir, 'r1.pem');
    fs.writeFileSync(keyFile, signing.privateKey);
    const w = await world({}, { reports: { dmarc: { signing: { domain: 'postern.test', selector: 'r1', keyFile } } } });
    await sendSpoofed(w);
    const [m] = await w.sink.waitFor(1);
    const verified = await dkimVerify(m!.raw, {
      resolver: (name: string) => name === 'r1._domainkey.postern.test'
        ? Promise.resolve([[signing.record]])
        : Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' })),
    });
    assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));
    assert.equal(verified.results[0]?.signingDomain, 'postern.test');
  });

  it('is off by default: a gateway without the setting sends nothing, where one with it reports the same message', async () => {
    const off = await world(null);
    const on = await world({});
    // the default gateway first: had it queued a report, that one would be out before the other's
    await sendSpoofed(off);
    await sendSpoofed(on);
    await on.sink.waitFor(1);
    await waitOutcomes(on, { sent: 1 });
    assert.deepEqual(off.sink.messages, []);
    assert.deepEqual(await outcomes(off), { sent: 0, 'rate-limited': 0, 'queue-full': 0, refused: 0, failed: 0 });
  });

  it('caps reports per reported domain: a burst of 6 spoofed messages from its subdomains gives 2 reports, 4 counted rate-limited', async () => {
    const w = await world({ perDomainPerHour: 2 });
    // random subdomains all find the record at spoof.example: they share its cap
    for (let i = 0; i < 6; i++) await sendSpoofed(w, `ceo@x${i}.spoof.example`);
    await waitOutcomes(w, { sent: 2, 'rate-limited': 4 });
    const reports = reportsAt(w.sink);
    assert.equal(reports.length, 2);
    assert.deepEqual(reports.map((r) => field(r, 'Reported-Domain')), ['x0.spoof.example', 'x1.spoof.example']);
    const logged = w.gw.logs.filter((l) => l.event === 'dmarc-failure-report' && l.outcome === 'rate-limited');
    assert.equal(logged.length, 1, 'drops are logged once a minute, not once each');
  });

  it('sends nothing to an external ruf= destination that did not authorise itself, and to one that did', async () => {
    const w = await world({});
    await sendSpoofed(w, 'ceo@ext-no.example');
    await waitOutcomes(w, { refused: 1 });
    assert.deepEqual(reportsAt(w.sink), []);
    await sendSpoofed(w, 'ceo@ext-ok.example');
    await waitOutcomes(w, { refused: 1, sent: 1 });
    const reports = reportsAt(w.sink);
    assert.deepEqual(reports.map((r) => [r.to, field(r, 'Reported-Domain')]), [[['forensic@collector.example'], 'ext-ok.example']]);
  });

  it('a slow relay does not hold the reply of the next message, nor the shutdown; a dead relay only counts failed', async () => {
    const held: Buffer[] = [];
    const relay = await startSink({ behaviour: { data: (raw) => (held.push(raw), 'hang') } });
    sinks.push(relay);
    const w = await worldWith({}, { reports: { dmarc: { relay: { host: '127.0.0.1', port: relay.port } } } });
    let closed = false;
    try {
      await sendSpoofed(w);
      await eventually(() => held.length === 1, 'the relay holding the first report');
      // the relay will not answer: the next spoofed message is answered all the same, and mail flows
      await sendSpoofed(w);
      const ok = await sendMail(w.gw.port, { from: 'news@spoof.example', to: ['user@example.net'], message: message({ from: 'news@spoof.example' }), preface: proxyV1('192.0.2.10') });
      assert.equal(ok.data?.code, 250, JSON.stringify(ok));
      await w.close();
      closed = true;
      // the delivery cut off by the shutdown and the one still queued
      assert.deepEqual(await outcomesAfterClose(w), { sent: 0, failed: 2 });
    } finally {
      if (!closed) await w.close();
    }

    const dead = await startSink();
    const port = dead.port;
    await dead.close(); // nothing listens there any more
    const w2 = await world({}, { reports: { dmarc: { relay: { host: '127.0.0.1', port } } } });
    await sendSpoofed(w2);
    await waitOutcomes(w2, { failed: 1, sent: 0 });
    assert.ok(w2.gw.logs.some((l) => l.event === 'dmarc-failure-report' && l.outcome === 'failed' && /ECONNREFUSED/.test(String(l.detail))));
  });

  it('fo=1: a message that passed DMARC on SPF alone is delivered, and reported for its missing aligned DKIM', async () => {
    const w = await world({});
    const r = await sendMail(w.gw.port, { from: 'news@fo1.example', to: ['user@example.net'], message: message({ from: 'news@fo1.example' }), preface: proxyV1('192.0.2.10') });
    assert.equal(r.data?.code, 250, JSON.stringify(r));
    await waitOutcomes(w, { sent: 1 });
    const [report] = reportsAt(w.sink);
    assert.ok(report);
    assert.deepEqual(report.to, ['ruf@fo1.example']);
    assert.equal(field(report, 'Auth-Failure'), 'dmarc');
    assert.equal(field(report, 'Identity-Alignment'), 'dkim');
    assert.equal(field(report, 'Delivery-Result'), 'delivered');
    assert.equal(field(report, 'Source-IP'), '192.0.2.10');
  });
});

/** The counters as the registry holds them (the HTTP endpoint is closed with the gateway). */
async function outcomesAfterClose(w: World): Promise<{ sent: number; failed: number }> {
  const text = await w.gw.gateway.registry.getSingleMetricAsString('postern_dmarc_failure_reports_total');
  const value = (o: string): number => Number(new RegExp(`^postern_dmarc_failure_reports_total\\{outcome="${o}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { sent: value('sent'), failed: value('failed') };
}

function headerOf(report: FailureReportMail, name: string): string | null {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(report.raw.toString('latin1').split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' '))?.[1]?.trim() ?? null;
}
