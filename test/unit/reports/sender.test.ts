/**
 * The sender at a period boundary, on the local store with a manual clock and a real relay
 * (the backend sink): `--now` keeps the grace of a period that just ended, so a row decided
 * at its last moment still joins its report; rows that reach a period after its job was made
 * (a node whose clock is behind) become a report of their own instead of being stranded; a
 * destination's verification record may send the report elsewhere at its host, never beyond.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DNSResolver } from 'mailauth';
import pino from 'pino';
import type { DmarcPublished } from '../../../src/core/facts.ts';
import { createLocalReportStore } from '../../../src/reports/local-store.ts';
import { encodeRow, type ReportRow } from '../../../src/reports/row.ts';
import { createSender, type Sender } from '../../../src/reports/sender.ts';
import type { ReportStore } from '../../../src/reports/store.ts';
import { reportsIn } from '../../harness/reports.ts';
import { startSink, type Sink } from '../../harness/sink.ts';
import { manualClock } from '../../harness/world.ts';

const REPORTER = 'reports@postern.test';
const DOMAIN = 'own.example';
const DAY = 86_400_000;
const published: DmarcPublished = {
  domain: DOMAIN, p: 'none', sp: null, np: null, adkim: 'r', aspf: 'r', testing: false, psd: 'u', fo: null, discovery: 'treewalk',
  rua: [`mailto:dmarc@${DOMAIN}`], ruf: [],
};
const row = (ip: string): ReportRow => ({
  sourceIp: ip, disposition: 'none', dkim: 'fail', spf: 'pass', reasons: [], headerFrom: DOMAIN, envelopeFrom: DOMAIN, envelopeTo: 'example.net',
  dkimResults: [], spfResult: { domain: DOMAIN, scope: 'mfrom', result: 'pass' },
});
// the destination is in the report domain: no DNS is asked
const noDns = (() => Promise.reject(Object.assign(new Error('no DNS in this test'), { code: 'ESERVFAIL' }))) as unknown as DNSResolver;

describe('report sender: period boundaries and destinations', () => {
  let sink: Sink;
  const dirs: string[] = [];
  before(async () => {
    sink = await startSink();
  });
  after(async () => {
    await sink.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const setup = (opts: { rua?: string; resolver?: DNSResolver } = {}): {
    clock: ReturnType<typeof manualClock>; store: ReportStore; sender: Sender; period: number; count: (ip: string, period?: number) => Promise<void>;
  } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-sender-'));
    dirs.push(dir);
    const clock = manualClock(Date.parse('2026-11-23T23:59:59Z'));
    const store = createLocalReportStore({ dir, clock });
    const sender = createSender({
      store, resolver: opts.resolver ?? noDns, clock, logger: pino({ level: 'silent' }), metrics: null, signer: null,
      settings: { orgName: 'Test', email: REPORTER, extraContact: '', maxReportBytes: 1_000_000, generator: 'Postern', maxAgeMs: 3 * DAY, ratePerMinute: 6000 },
      relay: { host: '127.0.0.1', port: sink.port, hostname: 'mx.postern.test', connectTimeoutMs: 2_000, commandTimeoutMs: 2_000, dataTimeoutMs: 2_000 },
    });
    const period = Date.parse('2026-11-23T00:00:00Z');
    const count = (ip: string, p = period): Promise<void> =>
      store.collect({ domain: DOMAIN, period: p, periodEnd: p + DAY, field: encodeRow(row(ip)), policy: JSON.stringify({ ...published, rua: [opts.rua ?? published.rua[0]] }) });
    return { clock, store, sender, period, count };
  };
  const messagesIn = (from: number): number[] => reportsIn(sink.messages.slice(from), REPORTER).map((r) => r.records.reduce((n, x) => n + x.count, 0));

  it('--now leaves a period that ended within the grace for a later run, which reports the last-moment row too', async () => {
    const { clock, store, sender, count } = setup();
    const before = sink.messages.length;
    await count('192.0.2.1');
    clock.advance(11_000); // the period ended 10 s ago
    const now = await sender.run({ closeOpen: true, ignoreBackoff: true });
    assert.equal(now.generated, 0, 'an ended period was closed within its grace');
    await count('192.0.2.2'); // decided at 23:59:59.9, written now
    clock.advance(51_000); // 61 s after the end
    const later = await sender.run();
    assert.equal(later.sent, 1);
    assert.deepEqual(messagesIn(before), [2]);
    assert.deepEqual(await store.openPeriods(DOMAIN), []);
    await store.close();
  });

  it('rows that reach a period after its report was made go out in a report of their own, with its own report-id', async () => {
    const { clock, store, sender, count } = setup();
    const before = sink.messages.length;
    await count('192.0.2.1');
    clock.advance(61_000 + 1_000);
    assert.equal((await sender.run()).sent, 1);
    await count('192.0.2.3'); // a node whose clock is behind still counts into the closed period
    clock.advance(60_000);
    const late = await sender.run();
    assert.equal(late.sent, 1, JSON.stringify(late));
    assert.deepEqual(messagesIn(before), [1, 1]);
    const ids = reportsIn(sink.messages.slice(before), REPORTER).map((r) => /<report_id>([^<]+)<\/report_id>/.exec(r.xml)?.[1]);
    assert.equal(new Set(ids).size, 2, `report-ids ${ids.join(', ')}`);
    assert.deepEqual(await store.openPeriods(DOMAIN), [], 'the late rows stayed stranded in an open period');
    assert.equal((await sender.run()).sent, 0);
    await store.close();
  });

  it('a destination\'s record that names another address at its host gets the report there; one naming another host, nothing', async () => {
    // RFC 9990 §3 step 9: rua= in <domain>._report._dmarc.<host> replaces the destination
    const zone: Record<string, string> = {
      [`${DOMAIN}._report._dmarc.red.example`]: 'v=DMARC1; rua=mailto:agg@red.example',
      [`${DOMAIN}._report._dmarc.green.example`]: 'v = DMARC1; rua=mailto:agg@collector.example',
    };
    const resolver = ((name: string, type: string): Promise<string[][]> => {
      const txt = type === 'TXT' ? zone[name] : undefined;
      return txt ? Promise.resolve([[txt]]) : Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    }) as unknown as DNSResolver;
    for (const [rua, expected] of [['mailto:reports@red.example', ['agg@red.example']], ['mailto:reports@green.example', []]] as const) {
      const { clock, store, sender, count } = setup({ rua, resolver });
      const before = sink.messages.length;
      await count('192.0.2.1');
      clock.advance(62_000);
      const summary = await sender.run();
      const got = sink.messages.slice(before);
      assert.deepEqual(got.map((m) => m.rcptTo), expected.length ? [expected] : [], JSON.stringify(summary));
      if (expected.length) assert.match(got[0]!.raw.toString('latin1'), /^To: agg@red\.example\r$/m);
      else assert.equal(summary.refused, 1);
      assert.equal((await sender.run()).sent, 0, 'sent again');
      await store.close();
    }
  });
});
