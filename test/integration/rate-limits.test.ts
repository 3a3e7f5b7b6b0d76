/**
 * Rate limits and reputation at the SMTP boundary (issue 3): a burst cut and recovering, a
 * good domain going faster than an unknown one, a spoofed good domain gaining nothing, the
 * same limit enforced by the memory store and by Redis. A manual clock moves time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { domainSubject } from '../../src/reputation/keys.ts';
import { createMemoryStore } from '../../src/reputation/memory-store.ts';
import { scoreParams } from '../../src/reputation/store.ts';
import { reputationConfigSchema } from '../../src/reputation/config.ts';
import type { RateStore } from '../../src/reputation/types.ts';
import { message, sign } from '../harness/mail.ts';
import { SmtpTestClient, connectMany, sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { manualClock, startWorld, type World } from '../harness/world.ts';

const FROM = 'bob@good.example';
const ZONE = {
  'unknown.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }],
  '_dmarc.unknown.example': [{ TXT: 'v=DMARC1; p=none' }],
  'lax.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
  '_dmarc.lax.example': [{ TXT: 'v=DMARC1; p=none' }],
};

describe('rate limits at the SMTP boundary (memory store)', () => {
  it('a burst of messages from one IP is cut at the configured rate with 451 4.7.1, and recovers', async () => {
    const clock = manualClock();
    const w = await startWorld({ clock, config: { rateLimits: { ipMessages: { rate: '6/min', burst: 3 } } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      for (let i = 0; i < 3; i++) {
        assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250, `message ${i}`);
        assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
        assert.equal((await client.data(message({ from: FROM }))).code, 250);
      }
      const cut = await client.cmd(`MAIL FROM:<${FROM}>`);
      assert.equal(cut.code, 451);
      assert.match(cut.text, /^4\.7\.1 Rate limit exceeded, please slow down and try again in 10 s/);
      clock.advance(9_000);
      assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 451, 'not yet');
      clock.advance(1_000);
      assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250, 'one token back after 10 s');
      await client.quit();
      const metrics = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
      assert.match(metrics, /^postern_rate_limit_hits_total\{limiter="ip-messages"\} 2$/m);
      assert.equal(w.sink.messages.length, 3);
    } finally {
      await w.close();
    }
  });

  it('connections over the per-IP connection rate get 421 4.7.0 at the greeting', async () => {
    const w = await startWorld({ clock: manualClock(), config: { rateLimits: { ipConnections: { rate: '1/min', burst: 2 } } } });
    try {
      const sessions = await connectMany(w.gw.port, 3);
      assert.deepEqual(sessions.map((s) => s.greeting.code), [220, 220, 421]);
      assert.match(sessions[2]!.greeting.text, /^4\.7\.0 Rate limit exceeded, please slow down/);
      const metrics = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
      assert.match(metrics, /^postern_connections_total\{outcome="refused",reason="rate-limited"\} 1$/m);
      assert.match(metrics, /^postern_connections_total\{outcome="accepted",reason="ok"\} 2$/m);
      for (const s of sessions) s.client.destroy();
    } finally {
      await w.close();
    }
  });

  it('tokens taken by a transaction the client abandons (RSET) are given back', async () => {
    const w = await startWorld({ clock: manualClock(), config: { rateLimits: { ipMessages: { rate: '1/min', burst: 1 } } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      for (let i = 0; i < 3; i++) {
        assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250, `abandoned transaction ${i}`);
        assert.equal((await client.cmd('RSET')).code, 250);
      }
      assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 250);
      await client.cmd('RCPT TO:<user@example.net>');
      assert.equal((await client.data(message({ from: FROM }))).code, 250);
      assert.equal((await client.cmd(`MAIL FROM:<${FROM}>`)).code, 451, 'a completed message keeps its token');
      await client.quit();
    } finally {
      await w.close();
    }
  });

  it('a message that only got a 4xx (backend trouble) does not spend the sender\'s tokens: the retry pays once', async () => {
    const w = await startWorld({ clock: manualClock(), config: { rateLimits: { ipMessages: { rate: '1/hour', burst: 2 } } } });
    try {
      let failures = 2;
      w.sink.behaviour = { data: () => (failures-- > 0 ? { code: 451, message: '4.3.0 Queue file write error' } : undefined) };
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await sendMail(w.gw.port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) })).data?.code);
      assert.deepEqual(codes, [451, 451, 250]);
    } finally {
      await w.close();
    }
  });

  it('tokens taken while the client disconnects are given back', async () => {
    const rep = reputationConfigSchema.parse({});
    const inner = createMemoryStore({ score: scoreParams(rep) });
    // The store's answer to the first MAIL is held until the client has gone.
    let asked!: () => void;
    const storeAsked = new Promise<void>((resolve) => (asked = resolve));
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    let first = true;
    const store: RateStore = {
      ...inner,
      take: async (requests, now) => {
        if (first && requests.some((r) => r.limiter === 'ip-messages')) {
          first = false;
          asked();
          await held;
        }
        return inner.take(requests, now);
      },
    };
    const w = await startWorld({ clock: manualClock(), store, config: { rateLimits: { ipMessages: { rate: '1/hour', burst: 1 } } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      client.write(`MAIL FROM:<${FROM}>\r\n`);
      await storeAsked;
      client.destroy(); // gone while the store is still answering
      await eventually(() => w.gw.gateway.openConnections() === 0, 'the gateway saw the client leave');
      answer();
      // The only token comes back once the late answer is handled; the clock never moves, so
      // nothing else could make MAIL pass again.
      await eventually(async () => {
        const s = await SmtpTestClient.connect(w.gw.port);
        try {
          await s.client.cmd('EHLO client.example');
          return (await s.client.cmd(`MAIL FROM:<${FROM}>`)).code === 250;
        } finally {
          await s.client.quit();
        }
      }, 'MAIL accepted again: the token was given back');
    } finally {
      await w.close();
    }
  });

  describe('reputation', () => {
    let w: World;
    const clock = manualClock();
    const rep = reputationConfigSchema.parse({});
    const store = createMemoryStore({ score: scoreParams(rep) });
    before(async () => {
      w = await startWorld({ clock, store, zone: ZONE, config: { rateLimits: { domainMessages: { rate: '1/hour', burst: 2 } } } });
      // good.example earned a trusted score from earlier aligned deliveries
      for (let i = 0; i < 6; i++) await store.learn([{ subject: domainSubject('good.example'), delta: 20 }], clock.now());
    });
    after(() => w.close());

    const send = async (from: string, headerFrom: string, signKey?: 'rsa'): Promise<number | undefined> => {
      let raw = message({ from: headerFrom });
      if (signKey) raw = await sign(raw, { domain: 'good.example', selector: 's1', key: w.keys.rsa });
      return (await sendMail(w.gw.port, { from, to: ['user@example.net'], message: raw })).data?.code;
    };

    it('a good-reputation domain gets through a rate that stops an unknown one', async () => {
      const unknown = [];
      for (let i = 0; i < 4; i++) unknown.push(await send('a@unknown.example', 'a@unknown.example'));
      assert.deepEqual(unknown, [250, 250, 451, 451]);
      const good = [];
      for (let i = 0; i < 6; i++) good.push(await send(FROM, FROM));
      assert.deepEqual(good, [250, 250, 250, 250, 250, 250], 'trusted: burst x4');
    });

    it('a spoofed From of a good domain gains nothing: no domain bucket, no score change', async () => {
      const before = await store.inspect(domainSubject('lax.example'), clock.now());
      // lax.example publishes p=none: the spoof is delivered, but DMARC fails
      for (let i = 0; i < 3; i++) assert.equal(await send('x@unknown.example', 'ceo@lax.example'), 250);
      const afterSpoof = await store.inspect(domainSubject('lax.example'), clock.now());
      assert.equal(afterSpoof.score.samples, before.score.samples);
      assert.equal(afterSpoof.score.score, before.score.score);
      // and the From of the trusted domain does not lend its trust to a message it did not sign
      const goodBefore = await store.inspect(domainSubject('good.example'), clock.now());
      const spoofGood = await sendMail(w.gw.port, { from: 'x@unknown.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) });
      assert.equal(spoofGood.data?.code, 550, 'p=reject spoof refused');
      const goodAfter = await store.inspect(domainSubject('good.example'), clock.now());
      assert.equal(goodAfter.score.samples, goodBefore.score.samples);
      // while an aligned delivery does teach the domain
      assert.equal(await send('x@unknown.example', FROM, 'rsa'), 250);
      const learnt = await store.inspect(domainSubject('good.example'), clock.now());
      assert.equal(learnt.score.samples, goodBefore.score.samples + 1);
    });
  });
});
