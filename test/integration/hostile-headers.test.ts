/**
 * Header bombs (issue 10): mailauth's header parser is quadratic in folded lines, so one field
 * folded 100,000 times (400 KB, far under limits.maxHeaderBytes) used to block the event loop
 * for tens of seconds: every session and /healthz waited. The header guard refuses such a
 * header before the parser sees it: 552 5.3.4 naming the limit, at once, nothing relayed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

/** /healthz answered within `limitMs`, polled one after the other until stop() is called. */
function pollHealth(port: number, limitMs: number): { stop(): Promise<{ answered: number; slowest: number }> } {
  let running = true;
  let answered = 0;
  let slowest = 0;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(limitMs) });
      assert.equal(res.status, 200);
      await res.text();
      answered++;
      slowest = Math.max(slowest, Date.now() - started);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { answered, slowest };
    },
  };
}

describe('header bombs', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(() => w.close());

  const bombs: Array<[string, string, RegExp]> = [
    ['one field folded 100,000 times', `Subject: x\r\n${' y\r\n'.repeat(100_000)}`, /^5\.3\.4 Message header has a field folded over more than 1000 lines /],
    ['100,000 short fields', 'a:b\r\n'.repeat(100_000), /^5\.3\.4 Message header has more than 1000 fields /],
    ['10,001 lines in 1,000 fields', `${'X-F: a\r\n b\r\n c\r\n d\r\n e\r\n f\r\n g\r\n h\r\n i\r\n j\r\n'.repeat(1000)}X-Last: z\r\n`, /^5\.3\.4 Message header has more than 10000 lines /],
  ];
  for (const [what, header, reply] of bombs) {
    it(`${what}: 552 5.3.4 naming the limit, nothing relayed, /healthz answering throughout`, async () => {
      const before = w.sink.messages.length;
      const { client } = await SmtpTestClient.connect(w.gw.port);
      // On the start commit the event loop stalled for tens of seconds here: a /healthz request
      // must not wait that long (a generous bound: the stall, not speed, is what fails it).
      const health = pollHealth(w.gw.httpPort!, 8_000);
      try {
        await client.cmd('EHLO client.example');
        assert.equal((await client.cmd('MAIL FROM:<bob@good.example>')).code, 250);
        assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
        const r = await client.data(`${header}From: <bob@good.example>\r\nTo: <user@example.net>\r\n\r\nbody\r\n`, 20_000);
        assert.equal(r.code, 552, r.lines.join('|'));
        assert.match(r.text, reply);
      } finally {
        const { answered } = await health.stop();
        assert.ok(answered > 0, '/healthz answered during the transaction');
        await client.quit();
      }
      assert.equal(w.sink.messages.length, before, 'nothing reached the backend');
      const d = w.gw.decisions().at(-1)!;
      assert.equal(d.action, 'reject');
      assert.equal(d.reason, 'oversize');
      const metrics = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
      assert.match(metrics, /^postern_message_limits_total\{limit="header-(field-lines|fields|lines)"\} [1-9]/m);
    });
  }

  it('a header within every limit (1,000 fields, a field of 1,000 lines) is delivered', async () => {
    const before = w.sink.messages.length;
    const header = `X-Folded: a\r\n${' b\r\n'.repeat(999)}${'X-F: v\r\n'.repeat(996)}`;
    const { client } = await SmtpTestClient.connect(w.gw.port);
    try {
      await client.cmd('EHLO client.example');
      await client.cmd('MAIL FROM:<bob@good.example>');
      await client.cmd('RCPT TO:<user@example.net>');
      // 997 fields here + From, To and Subject = 1,000
      const r = await client.data(`${header}From: <bob@good.example>\r\nTo: <user@example.net>\r\nSubject: ok\r\n\r\nbody\r\n`, 20_000);
      assert.equal(r.code, 250, r.lines.join('|'));
    } finally {
      await client.quit();
    }
    const messages = await w.sink.waitFor(before + 1);
    assert.match(messages.at(-1)!.raw.toString('latin1'), /X-Folded: a\r\n b\r\n/);
  });
});
