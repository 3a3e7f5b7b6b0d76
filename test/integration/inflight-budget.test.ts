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
import { startWorld } from '../harness/world.ts';

const FROM = 'bob@good.example';
const LINE = 'x'.repeat(998) + '\r\n';

async function inData(port: number): Promise<SmtpTestClient> {
  const { client } = await SmtpTestClient.connect(port);
  await client.cmd('EHLO client.example');
  assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250);
  assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
  assert.equal((await client.cmd('DATA')).code, 354);
  client.write(`From: <${FROM}>\r\nSubject: big\r\n\r\n`);
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
});
