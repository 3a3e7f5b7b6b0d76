/**
 * What the backend receives from a sender forging our trace and results headers (issue 10):
 * every Authentication-Results / ARC-Authentication-Results a downstream parser could read as
 * ours is gone, however it is spelt, and a first line starting with whitespace cannot
 * continue the Received field we put on top (it is refused).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { headerBlock, startWorld, type World } from '../harness/world.ts';

const OURS = 'mx.postern.test';

/** Sends `raw` exactly (latin1 bytes) and returns what the sink received. */
async function relay(w: World, raw: string): Promise<Buffer> {
  const before = w.sink.messages.length;
  const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: raw });
  assert.equal(r.data?.code, 250, r.data?.lines.join('|') ?? r.rcpt.map((x) => x.lines.join('|')).join(' '));
  return (await w.sink.waitFor(before + 1)).at(-1)!.raw;
}

describe('forged headers as the backend sees them', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(() => w.close());

  // Each forgery names its own domain in a dkim=pass claim, so the sink shows which survived.
  const forgeries: Array<[string, string]> = [
    ['space before the colon', `Authentication-Results : ${OURS}; dkim=pass header.d=f1.example`],
    ['fold before the colon', `Authentication-Results\r\n : ${OURS}; dkim=pass header.d=f2.example`],
    ['colon on the next line', `Authentication-Results\r\n: ${OURS}; dkim=pass header.d=f3.example`],
    ['NUL after the id', `Authentication-Results: ${OURS}\0; dkim=pass header.d=f4.example`],
    ['NUL and more after the id', `Authentication-Results: ${OURS}\0x; dkim=pass header.d=f5.example`],
    ['ARC with i=x', `ARC-Authentication-Results: i=x; ${OURS}; dkim=pass header.d=f6.example`],
    ['ARC with i= empty', `ARC-Authentication-Results: i=; ${OURS}; dkim=pass header.d=f7.example`],
    ['ARC with i=1 2', `ARC-Authentication-Results: i=1 2; ${OURS}; dkim=pass header.d=f8.example`],
    ['ARC without ";" after i=', `ARC-Authentication-Results: i=1 ${OURS}; dkim=pass header.d=f9.example`],
    ['upper case, trailing dot, quoted', `authentication-results: "MX.POSTERN.TEST."; dkim=pass header.d=f10.example`],
  ];

  it('removes every variant claiming our authserv-id, keeps the others, adds ours once on top', async () => {
    const raw = message({
      from: 'bob@good.example',
      headers: [...forgeries.map(([, f]) => f), 'Authentication-Results: upstream.example; spf=pass smtp.mailfrom=good.example'],
    });
    const got = await relay(w, raw);
    const header = headerBlock(got);
    for (const [what, field] of forgeries) {
      const marker = /header\.d=(f\d+\.example)/.exec(field)![1]!;
      assert.ok(!header.includes(marker), `${what}: the forgery reached the backend`);
    }
    assert.match(header, /^Authentication-Results: upstream\.example; spf=pass/m, 'results of other ids are kept');
    const claims = header.replace(/\r\n[ \t]+/g, ' ').split('\r\n').filter((l) => /^(ARC-)?Authentication-Results\s*:/i.test(l) && l.toLowerCase().includes(OURS));
    assert.equal(claims.length, 1, claims.join('\n'));
    assert.ok(header.startsWith(`Authentication-Results: ${OURS};`), 'ours is on top');
  });

  it('a first line starting with whitespace never reaches our Received field: refused 550 5.6.0, nothing relayed', async () => {
    const forged = ' by mx.postern.test (Postern) with ESMTPS id trusted for <user@example.net>';
    const before = w.sink.messages.length;
    const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: `${forged}\r\n${message({ from: 'bob@good.example' })}` });
    // moving it into the body, as Postfix's smtpd does, would relay a message without From
    // (test/integration/no-from.test.ts)
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    assert.match(r.data.text, /^5\.6\.0 Message header must start with a field name/);
    assert.equal(w.sink.messages.length, before);
  });
});
