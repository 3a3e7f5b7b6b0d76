/**
 * Envelope addresses smtp-server lets through (issue 10): an 8-bit byte in a local part
 * without SMTPUTF8 arrived as U+FFFD and was relayed to that other mailbox; labels over 63
 * octets were accepted. Now: 553 5.6.7 for non-ASCII without SMTPUTF8 or invalid UTF-8
 * (RFC 6531 §3.5), 553 5.1.3 / 5.1.7 for a domain DNS cannot hold. The backend is never asked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { SmtpTestClient, type Reply } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

/** Sends one command line as the exact bytes given (latin1: one char, one byte). */
async function raw(client: SmtpTestClient, line: string): Promise<Reply> {
  client.write(Buffer.from(`${line}\r\n`, 'latin1'));
  return client.read();
}

/** UTF-8 bytes of `text`, as a latin1 string for raw(). */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const LONG_LABEL = 'a'.repeat(64);
const LONG_NAME = `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(60)}.example.net`; // 264 octets

describe('envelope address syntax', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ config: { domains: ['example.net', '.example.net'] } });
  });
  after(() => w.close());

  async function session(mailParams = ''): Promise<SmtpTestClient> {
    const { client } = await SmtpTestClient.connect(w.gw.port);
    await client.cmd('EHLO client.example');
    assert.equal((await client.cmd(`MAIL FROM:<bob@good.example>${mailParams}`)).code, 250);
    return client;
  }

  const refusedRcpt: Array<[string, string, string, RegExp]> = [
    ['an 8-bit byte (not UTF-8) in the local part, no SMTPUTF8', '', 'RCPT TO:<us\xe9r@example.net>', /^5\.6\.7 Non-ASCII address not permitted/],
    ['UTF-8 in the local part, no SMTPUTF8', '', `RCPT TO:<${utf8('usér')}@example.net>`, /^5\.6\.7 Non-ASCII address not permitted/],
    ['an 8-bit byte (not UTF-8) with SMTPUTF8', ' SMTPUTF8', 'RCPT TO:<us\xe9r@example.net>', /^5\.6\.7 Non-ASCII address not permitted/],
    ['a label of 64 octets', '', `RCPT TO:<user@${LONG_LABEL}.example.net>`, /^5\.1\.3 Recipient address syntax is invalid/],
  ];
  for (const [what, params, line, reply] of refusedRcpt) {
    it(`RCPT with ${what}: 553, the backend never asked`, async () => {
      const client = await session(params);
      try {
        const r = await raw(client, line);
        assert.equal(r.code, 553, r.lines.join('|'));
        assert.match(r.text, reply);
      } finally {
        await client.quit();
      }
      assert.doesNotMatch(w.sink.received().toString('latin1'), /RCPT TO:<us|RCPT TO:<user@(a{64}|b{63})/);
    });
  }

  it('an address over 253 octets: smtp-server refuses it itself (501 5.1.3), before Postern sees it', async () => {
    const client = await session();
    try {
      const r = await raw(client, `RCPT TO:<user@${LONG_NAME}>`);
      assert.equal(r.code, 501, r.lines.join('|'));
      assert.match(r.text, /^5\.1\.3 /);
    } finally {
      await client.quit();
    }
  });

  const refusedMail: Array<[string, string, RegExp]> = [
    ['an 8-bit byte in the local part', 'MAIL FROM:<b\xe9b@good.example>', /^5\.6\.7 /],
    ['UTF-8 in the local part, no SMTPUTF8', `MAIL FROM:<${utf8('bób')}@good.example>`, /^5\.6\.7 /],
    ['a label of 64 octets', `MAIL FROM:<bob@${LONG_LABEL}.example>`, /^5\.1\.7 Sender address syntax is invalid/],
  ];
  for (const [what, line, reply] of refusedMail) {
    it(`MAIL FROM with ${what}: 553`, async () => {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      try {
        await client.cmd('EHLO client.example');
        const r = await raw(client, line);
        assert.equal(r.code, 553, r.lines.join('|'));
        assert.match(r.text, reply);
      } finally {
        await client.quit();
      }
    });
  }

  it('with SMTPUTF8 a UTF-8 local part is accepted and relayed as it was written', async () => {
    const before = w.sink.messages.length;
    const client = await session(' SMTPUTF8');
    try {
      assert.equal((await raw(client, `RCPT TO:<${utf8('usér')}@example.net>`)).code, 250);
      const r = await client.data(message({ from: 'bob@good.example' }));
      assert.equal(r.code, 250, r.lines.join('|'));
    } finally {
      await client.quit();
    }
    const m = (await w.sink.waitFor(before + 1)).at(-1)!;
    assert.deepEqual(m.rcptTo, ['usér@example.net']);
  });

  it('a label of exactly 63 octets is accepted', async () => {
    const client = await session();
    try {
      assert.equal((await raw(client, `RCPT TO:<user@${'a'.repeat(63)}.example.net>`)).code, 250);
    } finally {
      await client.quit();
    }
  });
});
