/** The facade over the memory store, with injected time: tiers, scaled limits, lists, learning. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rateLimitsConfigSchema, reputationConfigSchema } from '../../../src/reputation/config.ts';
import { domainSubject, ipSubject, netSubject } from '../../../src/reputation/keys.ts';
import { NO_LISTS, parseList, type Lists } from '../../../src/reputation/lists.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { createReputation, BLOCKED_RETRY_AFTER_MS, TIER_ZERO_RETRY_AFTER_MS } from '../../../src/reputation/reputation.ts';
import type { RateStore, Reputation, TakeResult } from '../../../src/reputation/types.ts';

const T0 = 1_700_000_000_000;
const IP = '203.0.113.7';

function setup(opts: {
  rateLimits?: Record<string, unknown>;
  reputation?: Record<string, unknown>;
  lists?: Lists;
  store?: RateStore;
} = {}) {
  const store = opts.store ?? createMemoryStore({ score: { halfLifeMs: 72 * 3_600_000, ttlMs: 30 * 86_400_000 } });
  const events: string[] = [];
  const rep: Reputation = createReputation({
    store,
    config: {
      reputation: reputationConfigSchema.parse({ minSamples: 3, ...opts.reputation }),
      rateLimits: rateLimitsConfigSchema.parse(opts.rateLimits ?? {}),
    },
    lists: opts.lists ?? NO_LISTS,
    observer: { limited: (l) => events.push(`limited:${l}`), tier: (t) => events.push(`tier:${t}`) },
  });
  return { rep, store, events };
}

async function learnN(rep: Reputation, n: number, event: Parameters<Reputation['learn']>[0]): Promise<void> {
  for (let i = 0; i < n; i++) await rep.learn(event, T0);
}

describe('reputation facade', () => {
  it('cuts a burst of connections from one IP at the configured rate, then recovers', async () => {
    const { rep, events } = setup({ rateLimits: { ipConnections: { rate: '60/min', burst: 3 } } });
    for (let i = 0; i < 3; i++) {
      const c = await rep.connect(IP, T0);
      assert.equal(c.ok, true);
      assert.equal(c.tier.tier, 'neutral');
    }
    const cut = await rep.connect(IP, T0);
    assert.equal(cut.ok, false);
    assert.deepEqual({ limitedBy: cut.ok ? null : cut.limitedBy, retry: cut.ok ? null : cut.retryAfterMs }, { limitedBy: 'ip-connections', retry: 1000 });
    assert.equal((await rep.connect(IP, T0 + 1000)).ok, true);
    assert.equal((await rep.connect(IP, T0 + 1000)).ok, false);
    assert.deepEqual(events.filter((e) => e.startsWith('limited')), ['limited:ip-connections', 'limited:ip-connections']);
  });

  it('reserves the IP and network buckets at connect, MAIL and RCPT, and release gives them back', async () => {
    const { rep } = setup({ rateLimits: { rcptMessages: { rate: '1/min', burst: 1 } } });
    const c = await rep.connect(IP, T0);
    assert.ok(c.ok);
    assert.deepEqual(c.reservation.taken.map((t) => [t.limiter, t.subject.id, t.ratePerSecond, t.burst]), [
      ['ip-connections', IP, 10, 300], ['net-connections', '203.0.113.0/24', 50, 1500],
    ]);
    const m = await rep.mail(IP, c.tier, T0);
    assert.ok(m.ok);
    assert.deepEqual(m.reservation.taken.map((t) => t.limiter), ['ip-messages', 'net-messages']);
    const r1 = await rep.rcpt(IP, 'User@Example.com', c.tier, T0);
    assert.ok(r1.ok);
    assert.deepEqual(r1.reservation.taken.map((t) => [t.limiter, t.subject.id]), [
      ['ip-recipients', IP], ['net-recipients', '203.0.113.0/24'], ['rcpt-messages', 'user@example.com'],
    ]);
    const r2 = await rep.rcpt('198.51.100.1', 'user@EXAMPLE.com', c.tier, T0);
    assert.deepEqual(r2, { ok: false, limitedBy: 'rcpt-messages', retryAfterMs: 60_000 });
    await rep.release(r1.reservation, T0);
    assert.equal((await rep.rcpt('198.51.100.1', 'user@example.com', c.tier, T0)).ok, true);
  });

  it('lets a good authenticated domain through a rate that stops an unknown one', async () => {
    const { rep } = setup({ rateLimits: { domainMessages: { rate: '1/hour', burst: 2 } } });
    await learnN(rep, 12, { ip: '192.0.2.1', authDomain: 'good.example', outcomes: [{ outcome: 'delivered-aligned' }] });
    const sent = async (domain: string): Promise<number> => {
      let ok = 0;
      for (let i = 0; i < 6; i++) if ((await rep.data(domain, T0)).ok) ok++;
      return ok;
    };
    assert.equal((await rep.data('good.example', T0)).domainTier, 'good');
    assert.equal(await sent('good.example'), 3, 'good ×2: burst 4, one used above');
    assert.equal(await sent('unknown.example'), 2);
  });

  it('gives a spoofed From nothing: without an authenticated domain no domain score moves', async () => {
    const { rep, store } = setup();
    await learnN(rep, 5, { ip: '192.0.2.1', authDomain: null, outcomes: [{ outcome: 'delivered-aligned' }] });
    await learnN(rep, 5, { ip: '192.0.2.2', authDomain: 'victim.example', outcomes: [{ outcome: 'auth-failed' }] });
    assert.deepEqual(await rep.data(null, T0), { domainTier: null, ok: true, reservation: { taken: [] } });
    const [victim] = await store.scores([domainSubject('victim.example')], T0);
    assert.deepEqual(victim, { subject: domainSubject('victim.example'), score: 0, samples: 0, updatedAt: 0 });
    const [ip, net] = await store.scores([ipSubject('192.0.2.2'), netSubject('192.0.2.2')], T0);
    assert.deepEqual([ip!.score, ip!.samples, net!.score, net!.samples], [-15, 5, 5 * 0.5 - 5 * 1.5, 10]);
  });

  it('scales limits down for a bad client, and refuses outright where the multiplier is 0', async () => {
    const { rep } = setup({ rateLimits: { ipMessages: { rate: '60/min', burst: 8 } } });
    await learnN(rep, 3, { ip: IP, authDomain: null, outcomes: [{ outcome: 'policy-rejected', count: 5 }] });
    const c = await rep.connect(IP, T0);
    assert.equal(c.tier.tier, 'bad');
    let ok = 0;
    for (let i = 0; i < 8; i++) if ((await rep.mail(IP, c.tier, T0)).ok) ok++;
    assert.equal(ok, 2, 'burst 8 × 0.25');

    const zero = setup({ reputation: { multipliers: { bad: 0 } } });
    await learnN(zero.rep, 3, { ip: IP, authDomain: null, outcomes: [{ outcome: 'policy-rejected', count: 5 }] });
    const refused = await zero.rep.connect(IP, T0);
    assert.equal(refused.tier.tier, 'bad');
    assert.deepEqual({ ok: refused.ok, ...(refused.ok ? {} : { l: refused.limitedBy, r: refused.retryAfterMs }) }, { ok: false, l: 'ip-connections', r: TIER_ZERO_RETRY_AFTER_MS });
    assert.deepEqual(zero.events.slice(-2), ['tier:bad', 'limited:ip-connections']);
  });

  it('needs minSamples before a score moves the tier', async () => {
    const { rep } = setup();
    await learnN(rep, 2, { ip: IP, authDomain: null, outcomes: [{ outcome: 'protocol-error', count: 20 }] });
    assert.equal((await rep.connect(IP, T0)).tier.tier, 'neutral');
    await learnN(rep, 1, { ip: IP, authDomain: null, outcomes: [{ outcome: 'protocol-error', count: 20 }] });
    assert.equal((await rep.connect(IP, T0)).tier.tier, 'bad');
  });

  it('judges a fresh address by its network', async () => {
    const { rep } = setup();
    for (let i = 1; i <= 4; i++) await learnN(rep, 1, { ip: `203.0.113.${i}`, authDomain: null, outcomes: [{ outcome: 'auth-failed', count: 10 }] });
    const c = await rep.connect('203.0.113.200', T0);
    assert.deepEqual([c.tier.tier, c.tier.ip.samples, c.tier.net.samples], ['bad', 0, 4]);
  });

  it('applies allow and block lists: bypass and trusted, or always limited', async () => {
    const lists: Lists = {
      allow: parseList('192.0.2.0/24\npartner.example\n', 'allow.txt'),
      block: parseList('198.51.100.66\n*.spam.example\n', 'block.txt'),
    };
    const { rep } = setup({ lists, rateLimits: { ipConnections: { rate: '1/hour', burst: 1 } } });
    for (let i = 0; i < 5; i++) {
      const c = await rep.connect('192.0.2.9', T0);
      assert.deepEqual([c.ok, c.tier.tier], [true, 'trusted']);
    }
    const b = await rep.connect('198.51.100.66', T0);
    assert.deepEqual([b.ok, b.tier.tier, b.ok ? null : b.limitedBy, b.ok ? null : b.retryAfterMs], [false, 'bad', 'blocklist', BLOCKED_RETRY_AFTER_MS]);
    assert.deepEqual(await rep.mail('198.51.100.66', b.tier, T0), { ok: false, limitedBy: 'blocklist', retryAfterMs: BLOCKED_RETRY_AFTER_MS });
    assert.deepEqual(await rep.data('mx.spam.example', T0), { domainTier: 'bad', ok: false, limitedBy: 'blocklist', retryAfterMs: BLOCKED_RETRY_AFTER_MS });
    assert.deepEqual(await rep.data('Partner.Example', T0), { domainTier: 'trusted', ok: true, reservation: { taken: [] } });
  });

  it('reads lists through a getter, so a reload swaps them', async () => {
    let lists: Lists = NO_LISTS;
    const { rep } = setup({ lists: undefined });
    const swapped = createReputation({
      store: createMemoryStore({ score: { halfLifeMs: 1, ttlMs: 1 } }),
      config: { reputation: reputationConfigSchema.parse({}), rateLimits: rateLimitsConfigSchema.parse({}) },
      lists: () => lists,
    });
    assert.equal((await swapped.connect(IP, T0)).ok, true);
    lists = { allow: NO_LISTS.allow, block: parseList(`${IP}\n`, 'block.txt') };
    assert.equal((await swapped.connect(IP, T0)).ok, false);
    assert.equal((await rep.connect(IP, T0)).ok, true);
  });

  it('passes a fail-closed store refusal through, marked as the store\'s fault', async () => {
    const refusing: RateStore = {
      ...createMemoryStore({ score: { halfLifeMs: 1, ttlMs: 1 } }),
      take: (): Promise<TakeResult> => Promise.resolve({ allowed: false, limitedBy: 'ip-messages', retryAfterMs: 60_000, storeUnavailable: true }),
    };
    const { rep } = setup({ store: refusing });
    const c = await rep.connect(IP, T0);
    assert.deepEqual(await rep.mail(IP, c.tier, T0), { ok: false, limitedBy: 'ip-messages', retryAfterMs: 60_000, storeUnavailable: true });
  });

  it('learns for ip, network and the authenticated domain', async () => {
    const { rep, store } = setup();
    await rep.learn({ ip: '2001:db8::5', authDomain: 'Good.Example', outcomes: [{ outcome: 'delivered-aligned' }] }, T0);
    const got = await store.scores([ipSubject('2001:db8::5'), netSubject('2001:db8::5'), domainSubject('good.example')], T0);
    assert.deepEqual(got.map((s) => [s.subject.id, s.score, s.samples]), [['2001:db8::5', 1, 1], ['2001:db8::/64', 0.5, 1], ['good.example', 1, 1]]);
  });
});
