/**
 * Regressions of issues 10 and 12 at the SMTP boundary, each failing on the code before the
 * transaction lifecycle:
 * - B3: after XCLIENT, the MAIL-stage decision used the previous client's tier, and looking up
 *   the new client's tier charged and counted a connection;
 * - B6: our own rate-limit refusals taught the reputation (a throttled sender turned suspect);
 * - B7: first_seen_within was per process (two nodes each started their own window);
 * - a cached backend refusal of one sender refused a valid mailbox to every sender;
 * - tokens of recipients the backend was asked about came back on RSET (harvesting unlimited);
 * - the DMARC refusal named the author domain and p= even where a subdomain inherited sp=/np=
 *   or a public-suffix domain's record applied;
 * - DKIM-requiring rules answered 5.7.20 whatever was found (RFC 7372 has three codes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ipSubject } from '../../src/reputation/keys.ts';
import { createMemoryStore } from '../../src/reputation/memory-store.ts';
import { scoreParams } from '../../src/reputation/store.ts';
import { reputationConfigSchema } from '../../src/reputation/config.ts';
import { tierOf } from '../../src/reputation/scores.ts';
import { message, sign } from '../harness/mail.ts';
import { scrape } from '../harness/metrics.ts';
import { deletePrefix, sharedRedisUrl, uniquePrefix } from '../harness/redis.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { manualClock, startWorld } from '../harness/world.ts';

const GOOD = 'bob@good.example';
const memoryStore = (): ReturnType<typeof createMemoryStore> => createMemoryStore({ score: scoreParams(reputationConfigSchema.parse({})) });

/** The loopback client's score and the tier it makes (minSamples 1, as the B6 gateways run). */
async function reputationOf(store: ReturnType<typeof memoryStore>, now: number): Promise<{ score: { score: number; samples: number }; tier: string }> {
  const { score } = await store.inspect(ipSubject('127.0.0.1'), now);
  const params = reputationConfigSchema.parse({ minSamples: 1 });
  return { score, tier: tierOf(score, params.thresholds, params.minSamples) };
}

describe('B3: XCLIENT names another client within the connection', () => {
  it('the MAIL-stage decision uses the named client\'s tier, and looking it up takes and counts no connection', async () => {
    const clock = manualClock();
    const store = memoryStore();
    // 192.0.2.66 has a bad record: enough certain bad outcomes to count
    for (let i = 0; i < 6; i++) await store.learn([{ subject: ipSubject('192.0.2.66'), delta: -10 }], clock.now());
    const policies = { '00-tier.yaml': 'rules:\n  - name: bad-tier\n    match: { tier: bad }\n    action: reject\n    reply: { text: "Your address has a bad reputation" }\n' };
    const w = await startWorld({ clock, store, policies, config: { xclient: { trusted: ['127.0.0.1'] } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO relay.example');
      assert.equal((await client.cmd('XCLIENT ADDR=192.0.2.66')).code, 220);
      await client.cmd('EHLO real-client.example');
      const mail = await client.cmd(`MAIL FROM:<${GOOD}>`);
      assert.equal(mail.code, 550, mail.text);
      assert.match(mail.text, /^5\.7\.1 Your address has a bad reputation/);
      assert.equal((w.gw.decisions().at(-1)!.client as { tier: string }).tier, 'bad');
      await client.quit();
      const m = await scrape(w.gw.httpPort);
      assert.equal(m.get('postern_connections_total{outcome="refused",reason="rate-limited"}'), undefined);
      const { buckets } = await store.inspect(ipSubject('192.0.2.66'), clock.now());
      assert.equal(buckets.find((b) => b.limiter === 'ip-connections'), undefined, 'no connection token taken for the named client');
    } finally {
      await w.close();
    }
  });
});

describe('B6: our own throttling teaches nothing', () => {
  it('a sender refused by its message rate keeps its score and tier', async () => {
    const clock = manualClock();
    const store = memoryStore();
    const w = await startWorld({ clock, store, config: { rateLimits: { ipMessages: { rate: '1/hour', burst: 1 } }, reputation: { minSamples: 1 } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      assert.equal((await client.cmd(`MAIL FROM:<${GOOD}>`)).code, 250);
      await client.cmd('RCPT TO:<user@example.net>');
      assert.equal((await client.data(message({ from: GOOD }))).code, 250);
      for (let i = 0; i < 15; i++) assert.equal((await client.cmd(`MAIL FROM:<${GOOD}>`)).code, 451, `refusal ${i}`);
      await client.quit();
      const { score } = await store.inspect(ipSubject('127.0.0.1'), clock.now());
      // what the one delivered, DMARC-aligned message taught (+1, one sample), nothing from the 15 refusals
      assert.deepEqual([score.score, score.samples], [1, 1], 'nothing learnt from our refusals');
      const again = await SmtpTestClient.connect(w.gw.port);
      assert.equal(again.greeting.code, 220);
      again.client.destroy();
      assert.equal((w.gw.logs.filter((l) => l.msg === 'connected').length), 2);
    } finally {
      await w.close();
    }
  });
  it('a client refused by its connection rate keeps its score and tier', async () => {
    const clock = manualClock();
    const store = memoryStore();
    const w = await startWorld({ clock, store, config: { rateLimits: { ipConnections: { rate: '1/hour', burst: 1 } }, reputation: { minSamples: 1 } } });
    try {
      const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
      assert.equal(greeting.code, 220);
      await client.quit();
      for (let i = 0; i < 15; i++) {
        const refused = await SmtpTestClient.connect(w.gw.port);
        assert.equal(refused.greeting.code, 421, `refusal ${i}`);
        refused.client.destroy();
      }
      await eventually(() => w.gw.gateway.openConnections() === 0, 'the refused sessions closed');
      const { score, tier } = await reputationOf(store, clock.now());
      assert.deepEqual([score.score, score.samples], [0, 0], 'nothing learnt from our refusals');
      assert.equal(tier, 'neutral');
      assert.equal((await scrape(w.gw.httpPort)).get('postern_smtp_replies_total{stage="connect",class="4xx"}'), 15);
    } finally {
      await w.close();
    }
  });

  it('a client refused by its recipient rate keeps its score and tier', async () => {
    const clock = manualClock();
    const store = memoryStore();
    const w = await startWorld({ clock, store, config: { rateLimits: { ipRecipients: { rate: '1/hour', burst: 1 } }, reputation: { minSamples: 1 } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      assert.equal((await client.cmd(`MAIL FROM:<${GOOD}>`)).code, 250);
      assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
      for (let i = 0; i < 15; i++) {
        const refused = await client.cmd(`RCPT TO:<user${i}@example.net>`);
        assert.deepEqual([refused.code, refused.text.slice(0, 5)], [451, '4.7.1'], `refusal ${i}`);
      }
      assert.equal((await client.cmd('RSET')).code, 250);
      await client.quit();
      await eventually(() => w.gw.gateway.openConnections() === 0, 'the session closed');
      const { score, tier } = await reputationOf(store, clock.now());
      assert.deepEqual([score.score, score.samples], [0, 0], 'nothing learnt from our refusals');
      assert.equal(tier, 'neutral');
    } finally {
      await w.close();
    }
  });
});

describe('recipient refusal cache (issue 10: poisoning)', () => {
  it('a refusal about the sender is never replayed to another sender; a mailbox refusal is, briefly', async () => {
    // Postfix refuses the attacker's sender domain at RCPT (smtpd_delay_reject), naming the sender
    let sender = '';
    const w = await startWorld({
      sink: {
        behaviour: {
          mail: (from) => { sender = from; return undefined; },
          rcpt: (address) => address === 'gone@example.net'
            ? { code: 550, message: '5.1.1 <gone@example.net>: User unknown' }
            : sender === 'x@evil.example' ? { code: 554, message: '5.7.1 <x@evil.example>: Sender address rejected: Access denied' } : undefined,
        },
      },
    });
    try {
      const attack = await sendMail(w.gw.port, { from: 'x@evil.example', to: ['user@example.net'], message: message({ from: 'x@evil.example' }) });
      assert.equal(attack.rcpt[0]!.code, 554);
      const legit = await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: message({ from: GOOD }) });
      assert.equal(legit.rcpt[0]!.code, 250, 'the mailbox is not refused to a legitimate sender');
      assert.equal(legit.data?.code, 250);
      // a mailbox that does not exist is cached: the second ask does not reach the backend
      const asked = (): number => w.sink.received().toString('latin1').split('RCPT TO:<gone@example.net>').length - 1;
      const first = await sendMail(w.gw.port, { from: GOOD, to: ['gone@example.net'], message: message({ from: GOOD }) });
      assert.equal(first.rcpt[0]!.code, 550);
      const second = await sendMail(w.gw.port, { from: 'other@good.example', to: ['gone@example.net'], message: message({ from: GOOD }) });
      assert.equal(second.rcpt[0]!.code, 550);
      assert.match(second.rcpt[0]!.text, /^5\.1\.1 /);
      assert.equal(asked(), 1, 'answered from the cache the second time');
    } finally {
      await w.close();
    }
  });

  it('a backend 4xx to RCPT (450, 451, even with a mailbox code) is never cached: the next RCPT asks the backend again', async () => {
    const answers = [
      { code: 450, message: '4.2.1 <user@example.net>: Mailbox temporarily unavailable' },
      { code: 451, message: '4.3.0 <user@example.net>: Temporary lookup failure' },
      { code: 450, message: '4.1.1 <user@example.net>: Recipient address rejected: unverified address: connect timeout' },
      { code: 451, message: 'Local error in processing' },
    ];
    let n = 0;
    const w = await startWorld({ sink: { behaviour: { rcpt: () => answers[n++] } } });
    try {
      const asked = (): number => w.sink.received().toString('latin1').split('RCPT TO:<user@example.net>').length - 1;
      for (const [i, answer] of answers.entries()) {
        const r = await sendMail(w.gw.port, { from: i % 2 ? GOOD : 'other@good.example', to: ['user@example.net'], message: message({ from: GOOD }) });
        assert.equal(r.rcpt[0]!.code, answer.code, `RCPT ${i}: the backend's ${answer.code} mirrored`);
        assert.equal(asked(), i + 1, `RCPT ${i} reached the backend`);
      }
      // the backend recovered: the next RCPT is its answer, not a remembered 4xx
      const recovered = await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: message({ from: GOOD }) });
      assert.equal(recovered.rcpt[0]!.code, 250);
      assert.equal(recovered.data?.code, 250);
      assert.equal(asked(), answers.length + 1);
    } finally {
      await w.close();
    }
  });

  it('a transient or reason-less backend refusal is never cached', async () => {
    let refuse = true;
    const w = await startWorld({ sink: { behaviour: { rcpt: () => (refuse ? { code: 550, message: 'mailbox unavailable' } : undefined) } } });
    try {
      assert.equal((await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: message({ from: GOOD }) })).rcpt[0]!.code, 550);
      refuse = false;
      assert.equal((await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: message({ from: GOOD }) })).rcpt[0]!.code, 250);
    } finally {
      await w.close();
    }
  });
});

describe('directory harvesting (issue 10: tokens of asked recipients stay spent)', () => {
  it('RSET does not give back recipient tokens: ipRecipients limits what the backend is asked', async () => {
    const clock = manualClock();
    const w = await startWorld({ clock, config: { rateLimits: { ipRecipients: { rate: '60/min', burst: 20 } } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO harvester.example');
      let answered = 0;
      for (let i = 0; i < 50; i++) {
        await client.cmd(`MAIL FROM:<${GOOD}>`);
        const r = await client.cmd(`RCPT TO:<user${i}@example.net>`);
        if (r.code === 250) answered++;
        else assert.match(r.text, /^4\.7\.1 Rate limit exceeded/);
        await client.cmd('RSET');
      }
      await client.quit();
      assert.equal(answered, 20, 'only the burst was asked');
      const asked = w.sink.received().toString('latin1').split('RCPT TO:').length - 1;
      assert.equal(asked, 20);
    } finally {
      await w.close();
    }
  });
});

describe('directory harvesting, every way of abandoning (issue 10 audit: RSET was the only one tested)', () => {
  const ways: Array<[string, (client: SmtpTestClient) => Promise<void> | void]> = [
    ['QUIT after each RCPT', (client) => client.quit()],
    ['a dropped connection after each RCPT (no QUIT)', (client) => client.destroy()],
    ['a connection reset after each RCPT', (client) => client.reset()],
  ];
  for (const [way, leave] of ways) {
    it(`${way}, a new connection per probe: the recipient tokens stay spent, ipRecipients limits what the backend is asked`, async () => {
      const clock = manualClock();
      const w = await startWorld({ clock, config: { limits: { greetingDelayMs: 0 }, rateLimits: { ipRecipients: { rate: '60/min', burst: 20 } } } });
      try {
        const abandoned = (): Array<Record<string, unknown>> => w.gw.logs.filter((l) => l.event === 'abandoned');
        let answered = 0;
        for (let i = 0; i < 40; i++) {
          const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
          assert.equal(greeting.code, 220, `probe ${i} greeted`);
          await client.cmd('EHLO harvester.example');
          assert.equal((await client.cmd(`MAIL FROM:<${GOOD}>`)).code, 250);
          const r = await client.cmd(`RCPT TO:<user${i}@example.net>`);
          if (r.code === 250) answered++;
          else assert.match(r.text, /^4\.7\.1 Rate limit exceeded/);
          await leave(client);
          // the abandoned transaction has ended at the gateway before the next probe
          await eventually(() => abandoned().length === i + 1, `probe ${i}'s transaction ended`);
        }
        assert.equal(answered, 20, 'only the burst was asked');
        assert.equal(w.sink.received().toString('latin1').split('RCPT TO:').length - 1, 20);
        assert.deepEqual([...new Set(abandoned().map((l) => l.by))], ['disconnect']);
      } finally {
        await w.close();
      }
    });
  }
});

describe('B7: first seen is shared by every node (Redis)', () => {
  let redis: Redis;
  const prefix = uniquePrefix('firstseen');
  before(() => { redis = new Redis(sharedRedisUrl()); });
  after(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('a retry that lands on another node continues the temperror window the first node started', async () => {
    // the DMARC record lookup times out: auth temperror, deferred for 4 h from first seen
    const zone = { '_dmarc.slow.example': ['TIMEOUT' as const], 'slow.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] };
    const clock = manualClock();
    const config = { redis: { url: sharedRedisUrl(), keyPrefix: prefix } };
    const a = await startWorld({ zone, clock, config });
    const b = await startWorld({ zone, clock, config });
    try {
      const msg = message({ from: 'x@slow.example', messageId: '<retry-1@slow.example>' });
      const first = await sendMail(a.gw.port, { from: 'x@slow.example', to: ['user@example.net'], message: msg });
      assert.equal(first.data?.code, 451, 'deferred on the first try');
      clock.advance(5 * 3_600_000);
      const retry = await sendMail(b.gw.port, { from: 'x@slow.example', to: ['user@example.net'], message: msg });
      assert.equal(retry.data?.code, 250, 'the other node knows the message was first seen 5 h ago');
      assert.equal((b.gw.decisions().at(-1)!.rule), '');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('replies that say what happened', () => {
  it('a subdomain inheriting sp=reject is refused naming the organizational domain and sp=', async () => {
    const zone = { '_dmarc.bank.example': [{ TXT: 'v=DMARC1; p=none; sp=reject' }], 'news.bank.example': [{ A: '192.0.2.80' }] };
    const w = await startWorld({ zone });
    try {
      const r = await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@news.bank.example' }) });
      assert.equal(r.data?.code, 550);
      assert.match(r.data.text, /^5\.7\.1 Rejected by DMARC policy: bank\.example publishes sp=reject and the message is not authenticated/);
    } finally {
      await w.close();
    }
  });

  it('a non-existent name under a public-suffix domain is refused naming the PSD the tree walk found and np=', async () => {
    // RFC 9989 §4.10: the walk reaches _dmarc.psd.example (psd=y); x.ghost.psd.example does not exist
    const zone = { '_dmarc.psd.example': [{ TXT: 'v=DMARC1; p=none; psd=y; np=reject' }] };
    const w = await startWorld({ zone });
    try {
      const r = await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@x.ghost.psd.example' }) });
      assert.equal(r.data?.code, 550);
      assert.match(r.data.text, /^5\.7\.1 Rejected by DMARC policy: psd\.example publishes np=reject and the message is not authenticated/);
      const d = w.gw.decisions().at(-1)! as { rule: string; auth: { dmarc: { result: string; domain: string; policy: string } } };
      assert.deepEqual([d.rule, d.auth.dmarc.result, d.auth.dmarc.domain, d.auth.dmarc.policy], ['dmarc-reject', 'fail', 'x.ghost.psd.example', 'reject']);
      assert.ok(w.dns.queries.some((q) => q.name === '_dmarc.psd.example'), 'found by the tree walk');
    } finally {
      await w.close();
    }
  });

  it('a rule requiring an author-matched DKIM signature answers 5.7.22 when only a third party signed', async () => {
    const policies = { '00-dkim.yaml': 'rules:\n  - name: need-author-dkim\n    match: { from_domain: bank.example, dkim_aligned: false }\n    action: reject\n' };
    const w = await startWorld({ policies, zone: { '_dmarc.bank.example': [{ TXT: 'v=DMARC1; p=none' }] } });
    try {
      const signed = await sign(message({ from: 'ceo@bank.example' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
      const r = await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: signed });
      assert.equal(r.data?.code, 550);
      assert.match(r.data.text, /^5\.7\.22 No valid author-matched DKIM signature found/);
      const unsigned = await sendMail(w.gw.port, { from: GOOD, to: ['user@example.net'], message: message({ from: 'ceo@bank.example' }) });
      assert.match(unsigned.data!.text, /^5\.7\.20 No passing DKIM signature found/);
    } finally {
      await w.close();
    }
  });
});
