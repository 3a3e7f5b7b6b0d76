/**
 * Before-queue delivery: the client's 250 is the backend's 250, never earlier; every backend
 * failure becomes a 4xx (or its own 5xx); nothing is lost and nothing is duplicated; no
 * end-of-data sequence can be smuggled to the backend.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { eventually } from '../harness/wait.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { headerValue, startWorld, type World } from '../harness/world.ts';

const FROM = 'bob@good.example';

describe('delivery to the backend', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ config: { backend: { dataTimeoutMs: 800, commandTimeoutMs: 800 } } });
  });
  after(() => w.close());
  beforeEach(() => {
    w.sink.messages.length = 0;
    w.sink.behaviour = {};
  });

  it('delivers with a 250 that mirrors the backend acceptance, body intact', async () => {
    const raw = message({ from: FROM, body: 'line one\r\n.leading dot\r\nlast line\r\n' });
    const r = await sendMail(w.gw.port, { from: FROM, to: ['user@example.net'], message: raw });
    assert.equal(r.data?.code, 250);
    assert.match(r.data.text, /^2\.\d\.\d .*\(\w+\)$/);
    const [m] = await w.sink.waitFor(1);
    assert.equal(m!.mailFrom, FROM);
    assert.deepEqual(m!.rcptTo, ['user@example.net']);
    assert.ok(m!.raw.toString('latin1').endsWith(raw.slice(raw.indexOf('\r\n\r\n'))), 'original header fields and body follow our headers unchanged');
  });

  it('mirrors a recipient the backend refuses (550 5.1.1) and delivers to the others only', async () => {
    w.sink.behaviour = { rcpt: (a) => (a.startsWith('nobody@') ? { code: 550, message: '5.1.1 <nobody@example.net>: Recipient address rejected: User unknown' } : undefined) };
    const r = await sendMail(w.gw.port, { from: FROM, to: ['nobody@example.net', 'user@example.net'], message: message({ from: FROM }) });
    assert.equal(r.rcpt[0]!.code, 550);
    assert.match(r.rcpt[0]!.text, /^5\.1\.1 <nobody@example\.net>: Recipient address rejected: User unknown/);
    assert.equal(r.rcpt[1]!.code, 250);
    assert.equal(r.data?.code, 250);
    const [m] = await w.sink.waitFor(1);
    assert.deepEqual(m!.rcptTo, ['user@example.net']);
  });

  it('backend down: 451 4.4.1 at RCPT, the client keeps the message', async () => {
    const dead = await startWorld();
    const port = dead.sink.port;
    await dead.sink.close();
    try {
      const r = await sendMail(dead.gw.port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
      assert.equal(r.rcpt[0]!.code, 451);
      assert.match(r.rcpt[0]!.text, /^4\.4\.1 /);
      assert.equal(r.data, null);
      // nothing listens there any more
      await assert.rejects(new Promise((resolve, reject) => net.connect(port, '127.0.0.1').once('connect', resolve).once('error', reject)));
    } finally {
      await dead.gw.close();
      await dead.dns.close();
    }
  });

  for (const [label, behaviour, code, enhanced] of [
    ['backend tempfails DATA (451)', { code: 451, message: '4.3.0 Queue file write error' }, 451, '4.3.0'],
    ['backend refuses DATA (554)', { code: 554, message: '5.7.1 Content refused' }, 554, '5.7.1'],
    ['backend never answers DATA (timeout)', 'hang', 451, '4.4.1'],
    ['backend drops the connection during DATA', 'drop', 451, '4.4.1'],
  ] as const) {
    it(`${label}: client gets ${code} ${enhanced}, never 250`, async () => {
      w.sink.behaviour = { data: () => behaviour };
      const r = await sendMail(w.gw.port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
      assert.equal(r.data?.code, code, r.data?.lines.join('|'));
      assert.ok(r.data.text.startsWith(enhanced + ' '), r.data.text);
      assert.equal(w.sink.messages.length, 0);
      const d = w.gw.decisions().at(-1)!;
      assert.equal(d.action, code >= 500 ? 'reject' : 'tempfail');
    });
  }

  it('an oversize message gets 552 5.3.4 and nothing reaches the backend', async () => {
    const small = await startWorld({ config: { limits: { maxMessageSize: 2048 } } });
    try {
      const r = await sendMail(small.gw.port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM, body: 'x'.repeat(70) + '\r\n'.repeat(1) + ('y'.repeat(70) + '\r\n').repeat(60) }) });
      assert.equal(r.data?.code, 552, r.data?.lines.join('|'));
      assert.match(r.data.text, /^5\.3\.4 /);
      assert.equal(small.sink.messages.length, 0);
    } finally {
      await small.close();
    }
  });

  describe('smuggling (bare LF / bare CR end-of-data variants)', () => {
    const variants: Array<[string, string]> = [
      ['\\n.\\n', '\n.\n'],
      ['\\n.\\r\\n', '\n.\r\n'],
      ['\\r\\n.\\n', '\r\n.\n'],
      ['\\r.\\r', '\r.\r'],
      ['\\r.\\r\\n', '\r.\r\n'],
    ];
    for (const [label, terminator] of variants) {
      it(`a smuggled ${label} yields exactly one message at the backend, the smuggled commands as content`, async () => {
        const smuggled = `Subject: smuggle\r\nFrom: <${FROM}>\r\n\r\nfirst part${terminator}MAIL FROM:<evil@good.example>\r\nRCPT TO:<user@example.net>\r\nDATA\r\nFrom: <ceo@good.example>\r\n\r\nsmuggled\r\n`;
        const { client } = await SmtpTestClient.connect(w.gw.port);
        await client.cmd('EHLO client.example');
        await client.cmd(`MAIL FROM:<${FROM}>`);
        await client.cmd('RCPT TO:<user@example.net>');
        assert.equal((await client.cmd('DATA')).code, 354);
        client.write(smuggled + '.\r\n');
        const end = await client.read();
        assert.equal(end.code, 250, end.lines.join('|'));
        await client.quit();
        const [m] = await w.sink.waitFor(1);
        assert.equal(w.sink.messages.length, 1);
        // The backend sees every line CRLF-terminated and the lone dot stuffed: as a Postfix
        // would read these bytes, no DATA ends early (DESIGN.md: Postfix ends at \n.\n too).
        const wire = w.sink.received().toString('latin1');
        const dataStart = wire.lastIndexOf('DATA\r\n');
        const payload = wire.slice(dataStart + 6, wire.lastIndexOf('\r\n.\r\n'));
        assert.doesNotMatch(payload, /(^|[^\r])\n|\r(?!\n)/, 'no bare CR or LF on the wire to the backend');
        assert.doesNotMatch(payload, /\r\n\.\r\n/, 'no early end-of-data on the wire');
        assert.match(m!.raw.toString('latin1'), /MAIL FROM:<evil@good\.example>/, 'smuggled command kept as content');
      });
    }

    it('with bareLineEndings: reject, a bare LF gets 550 5.6.0 and nothing is delivered', async () => {
      const strict = await startWorld({ config: { limits: { bareLineEndings: 'reject' } } });
      try {
        const { client } = await SmtpTestClient.connect(strict.gw.port);
        await client.cmd('EHLO client.example');
        await client.cmd(`MAIL FROM:<${FROM}>`);
        await client.cmd('RCPT TO:<user@example.net>');
        await client.cmd('DATA');
        client.write(`From: <${FROM}>\r\n\r\nbare\nline\r\n.\r\n`);
        const end = await client.read();
        assert.equal(end.code, 550);
        assert.match(end.text, /^5\.6\.0 /);
        await client.quit();
        assert.equal(strict.sink.messages.length, 0);
      } finally {
        await strict.close();
      }
    });
  });

  it('10 concurrent clients x 20 messages: every 250 matches exactly one identical message at the backend, and no other arrives', async () => {
    const sent = new Map<string, string>();
    const accepted = new Set<string>();
    await Promise.all(Array.from({ length: 10 }, async (_, c) => {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd(`EHLO client${c}.example`);
      for (let i = 0; i < 20; i++) {
        const id = `c${c}m${i}`;
        const raw = message({ from: FROM, messageId: `${id}@test`, body: `payload ${id} ${'z'.repeat(i * 37)}\r\n` });
        sent.set(id, raw);
        assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250);
        assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
        const end = await client.data(raw);
        if (end.code === 250) accepted.add(id);
      }
      await client.quit();
    }));
    assert.equal(accepted.size, 200);
    const got = await w.sink.waitFor(200);
    const seen = new Map<string, number>();
    for (const m of got) {
      const id = /<(c\d+m\d+)@test>/.exec(headerValue(m.raw, 'Message-ID') ?? '')?.[1];
      assert.ok(id && accepted.has(id), `unexpected message ${id}`);
      seen.set(id, (seen.get(id) ?? 0) + 1);
      const original = sent.get(id)!;
      assert.ok(m.raw.toString('latin1').endsWith(original.slice(original.indexOf('\r\n\r\n'))), `body of ${id} identical`);
    }
    assert.equal(seen.size, 200);
    assert.ok([...seen.values()].every((n) => n === 1), 'no duplicates');
  });
});

/** A session that has just been told 354: the test writes the message (or not) itself. */
async function atData(port: number): Promise<SmtpTestClient> {
  const { client } = await SmtpTestClient.connect(port);
  await client.cmd('EHLO client.example');
  await client.cmd(`MAIL FROM:<${FROM}>`);
  await client.cmd('RCPT TO:<user@example.net>');
  assert.equal((await client.cmd('DATA')).code, 354);
  return client;
}

describe('client failures', () => {
  it('a client that disconnects in the middle of DATA delivers nothing, and the next client is served normally', async () => {
    const w = await startWorld();
    try {
      const client = await atData(w.gw.port);
      client.write(`From: <${FROM}>\r\nSubject: cut\r\n\r\nhalf a mess`);
      client.destroy();
      await eventually(() => w.gw.decisions().some((d) => d.ending === 'client-gone'), 'the transaction recorded as ended by the client leaving');
      assert.equal(w.gw.decisions().at(-1)!.action, 'tempfail');
      assert.ok(!w.gw.logs.some((l) => l.level === 50), 'no error-level log for a client disconnect');
      const r = await sendMail(w.gw.port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
      assert.equal(r.data?.code, 250);
      const got = await w.sink.waitFor(1);
      assert.equal(got.length, 1);
      assert.doesNotMatch(got[0]!.raw.toString('latin1'), /half a mess/);
    } finally {
      await w.close();
    }
  });

  it('a client too slow to finish DATA within limits.dataTimeoutMs gets 421 4.4.2 and is disconnected; nothing is delivered', async () => {
    const w = await startWorld({ config: { limits: { dataTimeoutMs: 300 } } });
    try {
      const client = await atData(w.gw.port);
      client.write(`From: <${FROM}>\r\nSubject: slow\r\n\r\n`);
      const r = await client.read(3_000);
      assert.equal(r.code, 421);
      assert.match(r.text, /^4\.4\.2 Timeout/);
      client.destroy();
      assert.equal(w.sink.messages.length, 0);
    } finally {
      await w.close();
    }
  });

  it('a header block over limits.maxHeaderBytes gets 552 5.3.4 naming the header', async () => {
    const w = await startWorld({ config: { limits: { maxHeaderBytes: 1024 } } });
    try {
      const raw = message({ from: FROM, headers: Array.from({ length: 30 }, (_, i) => `X-Filler-${i}: ${'f'.repeat(60)}`) });
      const r = await sendMail(w.gw.port, { from: FROM, to: ['user@example.net'], message: raw });
      assert.equal(r.data?.code, 552, r.data?.lines.join('|'));
      assert.match(r.data.text, /^5\.3\.4 Message header exceeds the limit of 1024 bytes/);
      assert.equal(w.sink.messages.length, 0);
    } finally {
      await w.close();
    }
  });
});
