/**
 * Floods, short: the limits hold (the figures, latency and RSS, are `make soak`'s; nothing is
 * asserted on time here). Clients come through PROXY headers from 127.0.0.1, a trusted
 * balancer, so that each has its own address as on the Internet.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scrape } from '../harness/metrics.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { proxyV1, startWorld, type World } from '../harness/world.ts';
import { openIdle, openMany } from './flood.ts';

const gauge = async (w: World, name: string): Promise<number> => (await scrape(w.gw.httpPort)).get(name) ?? NaN;

void describe('floods (limits hold)', () => {
  void it('slowloris connections up to the per-IP and the total cap: the next gets 421 4.7.0, a freed slot serves a legit client, every slot comes back', async () => {
    const w = await startWorld({ config: { proxyProtocol: { trusted: ['127.0.0.1/32'] }, limits: { maxConnections: 30, maxConnectionsPerIp: 5 } } });
    try {
      const port = w.gw.port;
      const sameIp = await openMany(port, 5, () => '10.77.0.1');
      assert.deepEqual(sameIp.map((c) => c.greeting.slice(0, 3)), ['220', '220', '220', '220', '220']);
      assert.match((await openIdle(port, '10.77.0.1')).greeting, /^421 4\.7\.0 /, 'the 6th connection from one address');
      const others = await openMany(port, 25, (k) => `10.78.0.${k + 1}`);
      assert.ok(others.every((c) => c.greeting.startsWith('220')), 'other addresses fill the rest');
      assert.match((await openIdle(port, '10.79.0.1')).greeting, /^421 4\.7\.0 /, 'connection 31 in total');
      await eventually(async () => await gauge(w, 'postern_connections_open') === 30, 'the 30 idle connections hold their slots');

      others[0]!.close();
      await eventually(() => w.gw.gateway.openConnections() === 29, 'a slot freed');
      const legit = await sendMail(port, { from: 'news@plain.example', to: ['user@example.net'], message: 'From: <news@plain.example>\r\nSubject: through\r\n\r\nhi\r\n', preface: proxyV1('192.0.2.44') });
      assert.equal(legit.greeting.code, 220);
      assert.equal(legit.data?.code, 250);

      for (const c of [...sameIp, ...others]) c.close();
      await eventually(async () => await gauge(w, 'postern_connections_open') === 0 && await gauge(w, 'postern_sessions_in_flight') === 0, 'every slot and session given back');
    } finally {
      await w.close();
    }
  });

  void it('a flood of uploads over the in-flight budget: bytes held never pass it, each upload gets 250 or 452 4.3.1, exactly the 250s reach the backend, and mail flows once it drains', async () => {
    const budget = 2_000_000;
    const w = await startWorld({ config: { proxyProtocol: { trusted: ['127.0.0.1/32'] }, limits: { maxBytesInFlight: budget } } });
    try {
      const uploads: SmtpTestClient[] = [];
      for (let i = 0; i < 8; i++) {
        const { client } = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1(`10.80.0.${i + 1}`) });
        await client.cmd('EHLO big.example');
        assert.equal((await client.cmd('MAIL FROM:<big@plain.example>')).code, 250);
        assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
        assert.equal((await client.cmd('DATA')).code, 354);
        uploads.push(client);
      }
      // 8 x 900 KB sent, none finished: 7.2 MB offered to a 2 MB budget
      for (const c of uploads) c.write(`From: <big@plain.example>\r\nSubject: big\r\n\r\n${`${'u'.repeat(898)}\r\n`.repeat(1_000)}`);
      let highest = 0;
      await eventually(async () => {
        highest = Math.max(highest, await gauge(w, 'postern_inflight_bytes'));
        return highest >= 890_000; // at least one upload is held whole: the last one standing fits
      }, 'the uploads fill the budget');
      assert.ok(highest <= budget, `${highest} bytes held with a budget of ${budget}`);

      const replies = [];
      for (const c of uploads) {
        c.write('.\r\n');
        replies.push(await c.read());
      }
      const codes = replies.map((r) => (r.code === 250 ? '250' : `${r.code} ${r.text.slice(0, 5)}`));
      assert.ok(codes.every((c) => c === '250' || c === '452 4.3.1'), codes.join(', '));
      const delivered = codes.filter((c) => c === '250').length;
      assert.equal(w.sink.messages.length, delivered);
      const m = await scrape(w.gw.httpPort);
      assert.equal(m.get('postern_inflight_budget_refusals_total{stage="data"}'), replies.length - delivered);

      await eventually(async () => await gauge(w, 'postern_inflight_bytes') === 0, 'the budget drained');
      const after = await sendMail(w.gw.port, { from: 'news@plain.example', to: ['user@example.net'], message: 'From: <news@plain.example>\r\nSubject: small\r\n\r\nstill flowing\r\n', preface: proxyV1('192.0.2.45') });
      assert.equal(after.data?.code, 250);
      for (const c of uploads) await c.quit();
    } finally {
      await w.close();
    }
  });
});
