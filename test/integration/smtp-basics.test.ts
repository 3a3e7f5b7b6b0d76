/**
 * The inbound SMTP surface: what EHLO offers, what an MX must refuse (relaying, routing
 * syntax, AUTH), what it must not disclose (VRFY/EXPN), exact reply lines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

describe('inbound SMTP basics', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(() => w.close());

  const session = async (): Promise<SmtpTestClient> => {
    const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
    assert.equal(greeting.code, 220);
    assert.match(greeting.text, /^mx\.postern\.test /);
    return client;
  };

  it('EHLO advertises SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES and no AUTH or STARTTLS without a certificate', async () => {
    const c = await session();
    const ehlo = await c.cmd('EHLO client.example');
    assert.equal(ehlo.code, 250);
    const caps = ehlo.lines.slice(1).map((l) => l.slice(4));
    assert.ok(caps.includes('SIZE 10000000'), caps.join(','));
    for (const cap of ['8BITMIME', 'PIPELINING', 'ENHANCEDSTATUSCODES', 'SMTPUTF8']) assert.ok(caps.includes(cap), `${cap} in ${caps.join(',')}`);
    assert.ok(!caps.some((cap) => cap.startsWith('AUTH')), 'no AUTH on an MX');
    assert.ok(!caps.includes('STARTTLS'));
    assert.ok(!caps.some((cap) => cap.startsWith('XCLIENT')), 'XCLIENT only for trusted peers');
    await c.quit();
  });

  it('refuses relaying to a domain that is not ours with 550 5.7.1, and nothing reaches the backend', async () => {
    const c = await session();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('MAIL FROM:<a@good.example>')).code, 250);
    const r = await c.cmd('RCPT TO:<victim@elsewhere.example>');
    assert.equal(r.code, 550);
    assert.match(r.text, /^5\.7\.1 Relaying denied/);
    const lit = await c.cmd('RCPT TO:<victim@[192.0.2.1]>');
    assert.equal(lit.code, 550);
    assert.match(lit.text, /^5\.7\.1 /);
    await c.quit();
    assert.equal(w.sink.connections, 0, 'no backend connection for a refused recipient');
  });

  for (const [label, rcpt, code, text] of [
    ['percent hack', 'victim%elsewhere.example@example.net', undefined, undefined],
    ['bang path', 'elsewhere.example!victim@example.net', undefined, undefined],
    ['escaped percent', 'victim\\%elsewhere.example@example.net', undefined, undefined],
    ['escaped bang', 'elsewhere.example\\!victim@example.net', undefined, undefined],
    ['quoted percent', '"victim%elsewhere.example"@example.net', undefined, undefined],
    // smtp-server drops the source route (RFC 5321 §4.1.1.3 allows that); what is left is relaying.
    ['source route', '@example.net:victim@elsewhere.example', 550, /^5\.7\.1 Relaying denied/],
    // smtp-server's own parser already refuses a quoted local part holding '@'.
    ['quoted @', '"victim@elsewhere.example"@example.net', 501, /^5\.1\.3 /],
  ] as const) {
    it(`refuses routing syntax (${label})`, async () => {
      const c = await session();
      await c.cmd('EHLO client.example');
      await c.cmd('MAIL FROM:<a@good.example>');
      const r = await c.cmd(`RCPT TO:<${rcpt}>`);
      assert.equal(r.code, code ?? 550, r.lines.join('|'));
      assert.match(r.text, text ?? /^5\.7\.1 Relaying denied: source routes/);
      await c.quit();
    });
  }

  it('answers AUTH with 500 (not recognised: disabled on an MX) and VRFY with 252 without disclosing anything', async () => {
    const c = await session();
    await c.cmd('EHLO client.example');
    const auth = await c.cmd('AUTH PLAIN AGJvYgBzZWNyZXQ=');
    assert.equal(auth.code, 500);
    const vrfy = await c.cmd('VRFY postmaster');
    assert.equal(vrfy.code, 252);
    assert.equal(vrfy.text, '2.0.0 Cannot VRFY user, but will accept message and attempt delivery');
    assert.doesNotMatch(vrfy.text, /postmaster/i);
    const expn = await c.cmd('EXPN staff');
    assert.equal(expn.code, 500, 'EXPN is not offered');
    assert.doesNotMatch(expn.text, /staff/);
    await c.quit();
  });

  it('requires EHLO before MAIL', async () => {
    const c = await session();
    const r = await c.cmd('MAIL FROM:<a@good.example>');
    assert.equal(r.code, 503);
    await c.quit();
  });

  it('refuses a recipient over the per-message limit with 452 4.5.3', async () => {
    const small = await startWorld({ config: { limits: { maxRecipients: 2 } } });
    try {
      const { client } = await SmtpTestClient.connect(small.gw.port);
      await client.cmd('EHLO client.example');
      await client.cmd('MAIL FROM:<a@good.example>');
      assert.equal((await client.cmd('RCPT TO:<a@example.net>')).code, 250);
      assert.equal((await client.cmd('RCPT TO:<b@example.net>')).code, 250);
      const third = await client.cmd('RCPT TO:<c@example.net>');
      assert.equal(third.code, 452);
      assert.match(third.text, /^4\.5\.3 Too many recipients/);
      await client.quit();
    } finally {
      await small.close();
    }
  });

  it('accepts a bare <postmaster> (RFC 5321 §4.5.1) as postmaster of our first domain', async () => {
    const c = await session();
    await c.cmd('EHLO client.example');
    await c.cmd('MAIL FROM:<a@good.example>');
    const r = await c.cmd('RCPT TO:<postmaster>');
    assert.equal(r.code, 250, r.lines.join('|'));
    await c.quit();
  });
});
