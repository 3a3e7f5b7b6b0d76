/**
 * The in-flight byte budget (issue 11 "Bounded memory", issue 10 "no budget for message bytes
 * in memory"): there is no spool, so past limits.maxBytesInFlight new messages are deferred
 * with 452 4.3.1 until bytes drain, at MAIL FROM when the budget is used up and at the end of
 * DATA for a message that did not fit; the message holding the budget is delivered normally.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scrape } from '../harness/metrics.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { proxyV1, startWorld } from '../harness/world.ts';

const FROM = 'bob@good.example';
const LINE = 'x'.repeat(998) + '\r\n';

async function inData(port: number, preface?: string, from = FROM): Promise<SmtpTestClient> {
  const { client } = await SmtpTestClient.connect(port, preface ? { preface } : {});
  await client.cmd('EHLO client.example');
  assert.equal((await client.cmd(`MAIL FROM:<${from}>`)).code, 250);
  assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
  assert.equal((await client.cmd('DATA')).code, 354);
  client.write(`From: <${from}>\r\nSubject: big\r\n\r\n`);
  return client;
}

describe('in-flight byte budget', () => {
  it('defers new messages with 452 4.3.1 while the budget is held, and takes them again once it drains', async () => {
    const w = await startWorld({ config: { limits: { maxBytesInFlight: 1_000_000 } } });
    try {
      const late = await inData(w.gw.port); // started before the budget filled up
      const big = await inData(w.gw.port);
      big.write(LINE.repeat(960)); // ~960 KB, not finished
      await eventually(async () => ((await scrape(w.gw.httpPort)).get('postern_inflight_bytes') ?? 0) >= 950_000, 'the big upload held in memory');

      const { client: fresh } = await SmtpTestClient.connect(w.gw.port);
      await fresh.cmd('EHLO client.example');
      const refused = await fresh.cmd(`MAIL FROM:<${FROM}>`);
      assert.equal(refused.code, 452);
      assert.match(refused.text, /^4\.3\.1 Insufficient system storage/);

      late.write(LINE.repeat(100) + '.\r\n');
      const lateReply = await late.read();
      assert.equal(lateReply.code, 452, 'a message that does not fit is deferred at its end');
      assert.match(lateReply.text, /^4\.3\.1 /);

      big.write('.\r\n');
      assert.equal((await big.read()).code, 250, 'the message holding the budget is delivered');
      await eventually(async () => (await scrape(w.gw.httpPort)).get('postern_inflight_bytes') === 0, 'bytes given back');
      assert.equal((await fresh.cmd(`MAIL FROM:<${FROM}>`)).code, 250, 'taken again once the budget drained');

      const m = await scrape(w.gw.httpPort);
      assert.equal(m.get('postern_inflight_budget_refusals_total{stage="mail"}'), 1);
      assert.equal(m.get('postern_inflight_budget_refusals_total{stage="data"}'), 1);
      assert.equal(w.gw.decisions().find((d) => d.reason === 'in-flight-budget')?.action, 'tempfail');
      assert.equal(w.sink.messages.length, 1);
      for (const c of [late, big, fresh]) await c.quit();
    } finally {
      await w.close();
    }
  });

  it('one client holds at most its share: its new messages wait, another client\'s go through', async () => {
    const w = await startWorld({ config: { limits: { maxBytesInFlight: 4_000_000, maxBytesInFlightPerClient: 1_000_000 }, proxyProtocol: { trusted: ['127.0.0.1'] } } });
    try {
      const hog = await inData(w.gw.port, proxyV1('192.0.2.1'));
      hog.write(LINE.repeat(960)); // ~960 KB of its 1 MB share, stalled before the end
      await eventually(async () => ((await scrape(w.gw.httpPort)).get('postern_inflight_bytes') ?? 0) >= 950_000, 'the stalled upload held in memory');

      const { client: again } = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.1') });
      await again.cmd('EHLO client.example');
      const refused = await again.cmd(`MAIL FROM:<${FROM}>`);
      assert.equal(refused.code, 452, 'the same client waits for its own bytes to drain');
      assert.match(refused.text, /^4\.3\.1 /);

      // (a sender without DMARC policy: the claimed address is not in good.example's SPF)
      const other = await inData(w.gw.port, proxyV1('192.0.2.2'), 'someone@elsewhere.example');
      other.write('small\r\n.\r\n');
      assert.equal((await other.read()).code, 250, 'another client is not locked out');
      for (const c of [hog, again, other]) await c.quit();
    } finally {
      await w.close();
    }
  });
});
