/**
 * DMARC aggregate reports sent by `serve` itself (issue 8, "receives the report by mail at the
 * next period"): the gateway's own scheduler, no CLI. A manual clock stands for the day; the
 * scheduler runs every 50 ms of real time, and each run writes a `dmarc-report-run` line that
 * the test waits on. Nothing goes out while the period is open or within its grace after the
 * end; one report per domain reaches the backend sink once it is past; later runs send
 * nothing again. Also end to end: mail under t=y carries policy_test_mode (RFC 9990 §2.1).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collected, expectedCounts, reportZone, sendTraffic } from '../harness/dmarc-traffic.ts';
import { message } from '../harness/mail.ts';
import { assertSchemaValid, countsOf, reportsIn } from '../harness/reports.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { manualClock, proxyV1, startWorld, type World } from '../harness/world.ts';

const REPORTER = 'dmarc-reports@postern.test';
const DAY = 86_400_000;

describe('DMARC aggregate reports from the scheduler inside serve', () => {
  const clock = manualClock(Date.parse('2026-11-23T10:00:00Z'));
  const periodEnd = Date.parse('2026-11-24T00:00:00Z');
  let w: World;
  let stateDir: string;

  before(async () => {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-dmarc-schedule-'));
    const zone = {
      ...reportZone(),
      // p=reject in test mode: a DMARC failure is quarantined, one step down (RFC 9989 §4.7)
      't.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
      '_dmarc.t.example': [{ TXT: 'v=DMARC1; p=reject; t=y; rua=mailto:dmarc@t.example' }],
    };
    w = await startWorld({
      zone, clock, reportSchedulerIntervalMs: 50,
      config: {
        hostname: 'mx.postern.test', proxyProtocol: { trusted: ['127.0.0.1/32'] },
        reports: { dmarc: { enabled: true, schedule: true, orgName: 'Postern Test Org', email: REPORTER, ratePerMinute: 600, stateDir } },
      },
    });
  });
  after(async () => {
    await w.close();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  const runs = (): number => w.gw.logs.filter((l) => l.event === 'dmarc-report-run').length;
  /** Two more scheduler runs: at least one started after what the test just did. */
  const twoMoreRuns = async (): Promise<void> => {
    const start = runs();
    await eventually(() => runs() >= start + 2, 'two more scheduler runs');
  };
  const rowsCounted = async (): Promise<number> => {
    const text = await w.gw.gateway.registry.getSingleMetricAsString('postern_dmarc_rows_collected_total');
    return Number(/^postern_dmarc_rows_collected_total (\d+)/m.exec(text)?.[1] ?? 0);
  };

  it('sends nothing before the period ends or within its grace, one report per domain after, none again', async () => {
    await sendTraffic([w.gw.port]);
    const r = await sendMail(w.gw.port, { from: 'news@t.example', to: ['user@example.net'], message: message({ from: 'news@t.example' }), preface: proxyV1('198.51.100.9') });
    assert.equal(r.data?.code, 250, JSON.stringify(r));
    await eventually(async () => (await rowsCounted()) === collected() + 1, 'rows counted');

    await twoMoreRuns();
    assert.equal(reportsIn(w.sink.messages, REPORTER).length, 0, 'sent while the period is open');

    clock.advance(periodEnd - clock.now() + 30_000); // ended 30 s ago: within the grace
    await twoMoreRuns();
    assert.equal(reportsIn(w.sink.messages, REPORTER).length, 0, 'sent within the grace after the end');

    clock.advance(31_000); // 61 s after the end
    await eventually(() => reportsIn(w.sink.messages, REPORTER).length >= 3, 'the reports at the backend sink');
    const reports = reportsIn(w.sink.messages, REPORTER);
    assert.deepEqual(reports.map((x) => x.to).sort(), ['dmarc@a.example', 'dmarc@t.example', 'reports@rua.example']);
    for (const report of reports) {
      await assertSchemaValid(report.xml);
      assert.match(report.filename, /^postern\.test!(a|b|t)\.example!1795392000!1795478399\.xml\.gz$/);
    }
    assert.deepEqual(countsOf(reports.find((x) => x.to === 'dmarc@a.example')!.records), expectedCounts('a.example'));
    assert.deepEqual(countsOf(reports.find((x) => x.to === 'reports@rua.example')!.records), expectedCounts('b.example'));
    // t=y: quarantined, the test mode's step down from p=reject, and said so (RFC 9990 §2.1)
    const testMode = reports.find((x) => x.to === 'dmarc@t.example')!;
    assert.deepEqual(countsOf(testMode.records), { '198.51.100.9|quarantine': 1 });
    assert.match(testMode.xml, /<disposition>quarantine<\/disposition>\s*<dkim>fail<\/dkim>\s*<spf>fail<\/spf>\s*<reason>\s*<type>policy_test_mode<\/type>/);
    assert.doesNotMatch(testMode.xml, /local_policy/);

    await twoMoreRuns();
    clock.advance(DAY); // the next period has no mail: nothing to report
    await twoMoreRuns();
    assert.equal(reportsIn(w.sink.messages, REPORTER).length, 3, 'a report was sent twice');
  });
});
