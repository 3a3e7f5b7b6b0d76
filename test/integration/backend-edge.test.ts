/**
 * Backend behaviour a library server will not produce, from a scripted backend: a client
 * leaving while the backend is slow, an idle 421 racing our MAIL on a pooled connection, a
 * 250 to DATA itself. And recipient refusals that must not let Postfix's error limit defer
 * the good recipients.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startDnsServer } from '../harness/dns-server.ts';
import { startFakeBackend, type Handler } from '../harness/fake-backend.ts';
import { startGateway, type TestGateway } from '../harness/gateway.ts';
import { message } from '../harness/mail.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { startWorld } from '../harness/world.ts';

const FROM = 'bob@good.example';
const ZONE = { 'good.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] };

async function withFake(handler: Handler, run: (port: number, fake: Awaited<ReturnType<typeof startFakeBackend>>, gw: TestGateway) => Promise<void>): Promise<void> {
  const dns = await startDnsServer(ZONE);
  const fake = await startFakeBackend(handler);
  const gw = await startGateway({ dnsPort: dns.port, backendPort: fake.port, config: { backend: { commandTimeoutMs: 2_000, dataTimeoutMs: 2_000 } } });
  try {
    await run(gw.port, fake, gw);
  } finally {
    await gw.close();
    await fake.close();
    await dns.close();
  }
}


describe('backend edge cases', () => {
  it('a client that leaves while the backend is still answering MAIL leaves no backend connection behind', async () => {
    // the backend's answer to MAIL is held until the client has gone
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const slowMail: Handler = async (line) => {
      if (line.startsWith('MAIL')) await held;
      return null;
    };
    await withFake(slowMail, async (port, fake, gw) => {
      const { client } = await SmtpTestClient.connect(port);
      await client.cmd('EHLO client.example');
      await client.cmd(`MAIL FROM:<${FROM}>`);
      client.write('RCPT TO:<user@example.net>\r\n');
      await eventually(() => fake.lines.some((l) => l.includes('MAIL FROM')), 'the backend got MAIL');
      client.destroy();
      await eventually(() => gw.gateway.openConnections() === 0, 'the gateway saw the client leave');
      answer();
      await eventually(() => fake.connections().open === 0, 'no backend connection left open');
      assert.equal(fake.connections().open, 0, `backend connection left open: ${fake.lines.join(' | ')}`);
      assert.ok(!fake.lines.some((l) => l.includes('RCPT')), 'no RCPT sent for a client that is gone');
    });
  });

  it('an idle 421 from the backend racing our MAIL on a pooled connection is retried on a fresh one', async () => {
    let mails = 0;
    const idle421: Handler = (line, conn) => (line.startsWith('MAIL') && conn === 1 && mails++ > 0 ? '421 4.4.2 fake.test Error: timeout exceeded' : null);
    await withFake(idle421, async (port, fake) => {
      for (let i = 0; i < 2; i++) {
        const r = await sendMail(port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
        assert.equal(r.rcpt[0]?.code, 250, `message ${i}: ${r.rcpt[0]?.lines.join('|')}`);
        assert.equal(r.data?.code, 250);
      }
      assert.equal(fake.connections().total, 2, 'second message went over a fresh connection');
    });
  });

  it('a 250 to the DATA command itself (a broken backend) is never passed on as acceptance', async () => {
    await withFake((line) => (line === 'DATA' ? '250 2.0.0 what message' : null), async (port) => {
      const r = await sendMail(port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
      assert.equal(r.data?.code, 451, r.data?.lines.join('|'));
      assert.match(r.data.text, /^4\.4\.1 /);
    });
  });
});

describe('recipient refusals', () => {
  it('past the per-transaction budget the rest is deferred (452 4.5.3), good recipients delivered; refusals are cached', async () => {
    let asked = 0;
    const w = await startWorld({
      sink: { behaviour: { rcpt: (a) => (a.startsWith('bad') ? (asked++, { code: 550, message: '5.1.1 User unknown' }) : undefined) } },
    });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      await client.cmd(`MAIL FROM:<${FROM}>`);
      assert.equal((await client.cmd('RCPT TO:<good@example.net>')).code, 250);
      for (let i = 0; i < 9; i++) {
        const r = await client.cmd(`RCPT TO:<bad${i}@example.net>`);
        assert.equal(r.code, 550);
        assert.match(r.text, /^5\.1\.1 User unknown/);
      }
      const over = await client.cmd('RCPT TO:<other@example.net>');
      assert.equal(over.code, 452);
      assert.match(over.text, /^4\.5\.3 Too many recipients refused/);
      assert.equal((await client.data(message({ from: FROM }))).code, 250);
      const [m] = await w.sink.waitFor(1);
      assert.deepEqual(m!.rcptTo, ['good@example.net']);
      assert.equal(asked, 9);
      // the same unknown recipient again: refused from the cache, the backend is not asked
      await client.cmd(`MAIL FROM:<${FROM}>`);
      const again = await client.cmd('RCPT TO:<bad0@example.net>');
      assert.equal(again.code, 550);
      assert.match(again.text, /^5\.1\.1 User unknown/);
      assert.equal(asked, 9);
      await client.quit();
    } finally {
      await w.close();
    }
  });

  it('a repeated recipient is one delivery and asks the backend once', async () => {
    const w = await startWorld();
    try {
      const r = await sendMail(w.gw.port, { from: FROM, to: ['user@example.net', 'USER@example.net'], message: message({ from: FROM }) });
      assert.deepEqual(r.rcpt.map((x) => x.code), [250, 250]);
      const [m] = await w.sink.waitFor(1);
      assert.deepEqual(m!.rcptTo, ['user@example.net']);
    } finally {
      await w.close();
    }
  });
});
