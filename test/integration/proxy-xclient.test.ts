/**
 * Client address from a load balancer (PROXY v1/v2, trusted CIDRs only) and from XCLIENT
 * (trusted CIDRs only), and the original client passed on to the backend with XCLIENT.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { headerValue, proxyV1, startWorld, type World } from '../harness/world.ts';

/** Authorises the documentation networks the tests claim, and not 127.0.0.1. */
const SENDER = 'proxied.example';
const ZONE = {
  [SENDER]: [{ TXT: 'v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 ip4:203.0.113.0/24 ip6:2001:db8::/32 -all' }],
  [`_dmarc.${SENDER}`]: [{ TXT: 'v=DMARC1; p=none' }],
  // 192.0.2.55 has forward-confirmed reverse DNS; 192.0.2.56 claims a name that does not point back
  '55.2.0.192.in-addr.arpa': [{ PTR: 'mail.proxied.example' }],
  'mail.proxied.example': [{ A: '192.0.2.55' }],
  '56.2.0.192.in-addr.arpa': [{ PTR: 'mail.bank.example' }],
  'mail.bank.example': [{ A: '203.0.113.200' }],
};

function proxyV2(ip: string, port: number): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const v6 = ip.includes(':');
  const head = Buffer.from([0x21, v6 ? 0x21 : 0x11, 0, v6 ? 36 : 12]);
  const addr = (a: string): Buffer => v6
    ? Buffer.from(a.split(':').flatMap((g) => [parseInt(g || '0', 16) >> 8, parseInt(g || '0', 16) & 0xff]))
    : Buffer.from(a.split('.').map(Number));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(port, 0);
  ports.writeUInt16BE(25, 2);
  return Buffer.concat([sig, head, addr(ip), addr(v6 ? '0:0:0:0:0:0:0:1' : '127.0.0.1'), ports]);
}

/** One delivery; returns the decision line's client and the message at the sink. */
async function deliverVia(w: World, preface: Buffer | string | undefined, commands: string[] = []): Promise<Buffer> {
  const { client, greeting } = await SmtpTestClient.connect(w.gw.port, { preface });
  assert.equal(greeting.code, 220, greeting.lines.join('|'));
  await client.cmd('EHLO relay.example');
  for (const c of commands) {
    const r = await client.cmd(c);
    assert.ok(r.code === 220 || r.code === 250, `${c}: ${r.lines.join('|')}`);
    if (r.code === 220) await client.cmd('EHLO real-client.example');
  }
  assert.equal((await client.cmd(`MAIL FROM:<bob@${SENDER}>`)).code, 250);
  assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
  const end = await client.data(message({ from: `bob@${SENDER}` }));
  assert.equal(end.code, 250, end.lines.join('|'));
  await client.quit();
  const got = await w.sink.waitFor(w.sink.messages.length);
  return got.at(-1)!.raw;
}

describe('PROXY protocol from trusted balancers', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ zone: ZONE, config: { proxyProtocol: { trusted: ['127.0.0.0/8'] } } });
  });
  after(() => w.close());

  it('v1 and v2 headers set the client address used for SPF and the trace header', async () => {
    for (const [label, preface, ip] of [
      ['v1', proxyV1('192.0.2.55'), '192.0.2.55'],
      ['v2 IPv4', proxyV2('198.51.100.7', 40001), '198.51.100.7'],
      ['v2 IPv6', proxyV2('2001:db8:0:0:0:0:0:9', 40002), '2001:db8::9'],
    ] as const) {
      const raw = await deliverVia(w, preface);
      assert.match(headerValue(raw, 'Received') ?? '', new RegExp(`\\[(IPv6:)?${ip.replace(/\./g, '\\.')}\\]`), label);
      // SPF was evaluated for the claimed address (127.0.0.1 would fail)
      assert.match(headerValue(raw, 'Authentication-Results') ?? '', /spf=pass/, label);
      assert.equal((w.gw.decisions().at(-1)!.client as { ip: string }).ip, ip, label);
    }
  });

  it('uses a reverse DNS name only when it is forward-confirmed (iprev)', async () => {
    const confirmed = await deliverVia(w, proxyV1('192.0.2.55'));
    assert.match(headerValue(confirmed, 'Received') ?? '', /\(mail\.proxied\.example \[192\.0\.2\.55\]\)/);
    assert.equal((w.gw.decisions().at(-1)!.client as { ptr: string | null }).ptr, 'mail.proxied.example');
    const liar = await deliverVia(w, proxyV1('192.0.2.56'));
    assert.match(headerValue(liar, 'Received') ?? '', /\(unknown \[192\.0\.2\.56\]\)/);
    assert.doesNotMatch(liar.toString('latin1'), /bank\.example/);
    assert.equal((w.gw.decisions().at(-1)!.client as { ptr: string | null }).ptr, null);
  });

  it('a trusted peer that sends no PROXY header is disconnected without a session', async () => {
    await assert.rejects(SmtpTestClient.connect(w.gw.port, { preface: 'EHLO not-a-proxy-header.example\r\n' }), /closed/);
  });
});

describe('PROXY protocol from an untrusted peer', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ zone: ZONE, config: { proxyProtocol: { trusted: ['192.0.2.0/24'] } } });
  });
  after(() => w.close());

  it('is not honoured: the header is an unknown command and the real address is kept', async () => {
    const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
    assert.equal(greeting.code, 220);
    const r = await client.cmd(proxyV1('192.0.2.55').trimEnd());
    assert.ok(r.code >= 500, r.lines.join('|'));
    await client.quit();
    const raw = await deliverVia(w, undefined);
    assert.match(headerValue(raw, 'Received') ?? '', /\[127\.0\.0\.1\]/);
  });
});

describe('XCLIENT', () => {
  it('is offered only to trusted peers, sets the client address, and is passed on to an XCLIENT backend', async () => {
    const w = await startWorld({
      zone: ZONE,
      config: { xclient: { trusted: ['127.0.0.1'] }, backend: { xclient: true } },
      sink: { advertiseXclient: true },
    });
    try {
      const raw = await deliverVia(w, undefined, ['XCLIENT ADDR=203.0.113.9 NAME=[UNAVAILABLE] HELO=real-client.example']);
      assert.match(headerValue(raw, 'Received') ?? '', /\[203\.0\.113\.9\]/);
      assert.match(headerValue(raw, 'Authentication-Results') ?? '', /spf=pass/);
      const m = w.sink.messages.at(-1)!;
      assert.equal(m.xclient?.ADDR, '203.0.113.9', JSON.stringify(m.xclient));
      assert.equal(m.helo, 'real-client.example');
    } finally {
      await w.close();
    }
    const untrusted = await startWorld({ zone: ZONE, config: { xclient: { trusted: ['192.0.2.0/24'] } } });
    try {
      const { client } = await SmtpTestClient.connect(untrusted.gw.port);
      const ehlo = await client.cmd('EHLO relay.example');
      assert.ok(!ehlo.lines.some((l) => l.includes('XCLIENT')));
      const r = await client.cmd('XCLIENT ADDR=203.0.113.9');
      assert.ok(r.code >= 500, r.lines.join('|'));
      await client.quit();
    } finally {
      await untrusted.close();
    }
  });
});
