/**
 * One behaviour, every store: the same tests run against the memory store, a single Redis and
 * a Redis Cluster. Time is injected (`now`), never slept on.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { ipSubject, netSubject, rcptSubject } from '../../../src/reputation/keys.ts';
import type { BucketRequest, Limiter, RateStore, Subject } from '../../../src/reputation/types.ts';

export const T0 = 1_700_000_000_000;
export const HALF_LIFE_MS = 3_600_000;
export const SCORE_TTL_MS = 86_400_000;

export interface StoreUnderTest {
  readonly store: RateStore;
  close(): Promise<void>;
}

export const req = (limiter: Limiter, subject: Subject, ratePerSecond: number, burst: number, cost = 1): BucketRequest =>
  ({ limiter, subject, ratePerSecond, burst, cost });

const ip = ipSubject('203.0.113.7');
const net = netSubject('203.0.113.7');

async function takeN(store: RateStore, r: BucketRequest[], n: number, now: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await store.take(r, now)).allowed) ok++;
  return ok;
}

async function tokens(store: RateStore, subject: Subject, limiter: Limiter, now: number): Promise<number | undefined> {
  const { buckets } = await store.inspect(subject, now);
  return buckets.find((b) => b.limiter === limiter)?.tokens;
}

export function storeBehaviour(make: () => Promise<StoreUnderTest>): void {
  let sut: StoreUnderTest;
  let store: RateStore;
  beforeEach(async () => {
    sut = await make();
    store = sut.store;
  });
  afterEach(() => sut.close());

  it('admits a burst, then cuts with an exact retry time', async () => {
    const r = [req('ip-messages', ip, 1, 5)];
    assert.equal(await takeN(store, r, 5, T0), 5);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 1000 });
    assert.deepEqual(await store.take(r, T0 + 400), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 600 });
  });

  it('admits the steady rate after the burst, and not more', async () => {
    const r = [req('ip-messages', ip, 2, 3)];
    assert.equal(await takeN(store, r, 3, T0), 3);
    for (let k = 1; k <= 10; k++) {
      assert.equal((await store.take(r, T0 + k * 500)).allowed, true, `token ${k}`);
      assert.deepEqual(await store.take(r, T0 + k * 500), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 500 });
    }
  });

  it('recovers the whole burst after waiting, never more than the burst', async () => {
    const r = [req('ip-connections', ip, 1, 5)];
    assert.equal(await takeN(store, r, 5, T0), 5);
    assert.equal(await takeN(store, r, 6, T0 + 3_600_000), 5);
  });

  it('charges a cost above 1 and computes its retry time', async () => {
    const r = [req('ip-recipients', ip, 1, 10, 4)];
    assert.equal(await takeN(store, r, 2, T0), 2);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'ip-recipients', retryAfterMs: 2000 });
    assert.equal((await store.take(r, T0 + 2000)).allowed, true);
  });

  it('release gives the tokens back, never above the burst', async () => {
    const r = [req('ip-messages', ip, 1, 3)];
    const first = await store.take(r, T0);
    assert.ok(first.allowed);
    assert.equal(await takeN(store, r, 2, T0), 2);
    assert.equal((await store.take(r, T0)).allowed, false);
    await store.release(first.reservation, T0);
    assert.equal(await takeN(store, r, 2, T0), 1);
    // Released twice and more than was ever taken: still a burst of 3 at most.
    const fresh = [req('ip-messages', ipSubject('203.0.113.8'), 1, 3)];
    const one = await store.take(fresh, T0);
    assert.ok(one.allowed);
    await store.release(one.reservation, T0);
    await store.release(one.reservation, T0);
    assert.equal(await takeN(store, fresh, 4, T0), 3);
  });

  it('is all-or-nothing over the buckets of one subject', async () => {
    const r = [req('ip-messages', ip, 1, 5), req('ip-recipients', ip, 1, 2)];
    assert.equal(await takeN(store, r, 2, T0), 2);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'ip-recipients', retryAfterMs: 1000 });
    assert.equal(await tokens(store, ip, 'ip-messages', T0), 3);
  });

  it('is all-or-nothing across subjects: when one denies, the others get their tokens back', async () => {
    const r = [req('ip-messages', ip, 1, 5), req('net-messages', net, 0.5, 1)];
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'net-messages', retryAfterMs: 2000 });
    assert.equal(await tokens(store, ip, 'ip-messages', T0), 4);
    assert.equal(await tokens(store, net, 'net-messages', T0), 0);
  });

  it('names the denying bucket with the longest wait', async () => {
    const rc = rcptSubject('User@Example.COM');
    const r = [req('ip-recipients', ip, 1, 1), req('rcpt-messages', rc, 0.1, 1), req('net-recipients', net, 1, 1)];
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'rcpt-messages', retryAfterMs: 10_000 });
  });

  it('admits an empty take', async () => {
    assert.deepEqual(await store.take([], T0), { allowed: true, reservation: { taken: [] } });
  });

  it('learns, decays with the injected time, and counts samples', async () => {
    await store.learn([{ subject: ip, delta: 4 }, { subject: net, delta: -2 }], T0);
    await store.learn([{ subject: ip, delta: 4 }], T0);
    const [a, b] = await store.scores([ip, net], T0);
    assert.deepEqual(a, { subject: ip, score: 8, samples: 2, updatedAt: T0 });
    assert.deepEqual(b, { subject: net, score: -2, samples: 1, updatedAt: T0 });
    const [later] = await store.scores([ip], T0 + HALF_LIFE_MS);
    assert.ok(Math.abs(later!.score - 4) < 1e-9, String(later!.score));
    // Learning decays first, then adds.
    await store.learn([{ subject: ip, delta: 1 }], T0 + 2 * HALF_LIFE_MS);
    const [after] = await store.scores([ip], T0 + 2 * HALF_LIFE_MS);
    assert.ok(Math.abs(after!.score - 3) < 1e-9, String(after!.score));
    assert.equal(after!.samples, 3);
  });

  it('keeps scores within the bound both ways', async () => {
    const other = ipSubject('2001:db8::1');
    for (let i = 0; i < 5; i++) await store.learn([{ subject: ip, delta: 60 }, { subject: other, delta: -60 }], T0);
    const [hi, lo] = await store.scores([ip, other], T0);
    assert.equal(hi!.score, 100);
    assert.equal(lo!.score, -100);
    assert.equal(hi!.samples, 5);
  });

  it('reads an unknown subject as a neutral, empty score', async () => {
    assert.deepEqual(await store.scores([ip], T0), [{ subject: ip, score: 0, samples: 0, updatedAt: 0 }]);
  });

  it('inspects and resets a subject', async () => {
    await store.take([req('ip-messages', ip, 1, 10, 3), req('ip-connections', ip, 1, 4, 2)], T0);
    await store.learn([{ subject: ip, delta: 2 }], T0);
    const seen = await store.inspect(ip, T0 + 1000);
    assert.deepEqual(seen.score, { subject: ip, score: 2 * Math.pow(0.5, 1000 / HALF_LIFE_MS), samples: 1, updatedAt: T0 });
    assert.deepEqual(seen.buckets.map((b) => [b.limiter, b.tokens, b.burst]).sort(), [['ip-connections', 3, 4], ['ip-messages', 8, 10]]);
    assert.equal(await store.reset(ip), 3);
    assert.deepEqual(await store.inspect(ip, T0 + 1000), { score: { subject: ip, score: 0, samples: 0, updatedAt: 0 }, buckets: [] });
    assert.equal(await store.reset(ip), 0);
  });

  it('keeps the window when a tier change scales rate and burst together', async () => {
    // Neutral: 1/s, burst 4, all taken. Promoted ×2 (2/s, burst 8): the tolerance in ms is the
    // same, so the debt carries over unchanged, and each second now refills two tokens.
    assert.equal(await takeN(store, [req('ip-messages', ip, 1, 4)], 4, T0), 4);
    assert.equal(await takeN(store, [req('ip-messages', ip, 2, 8)], 9, T0), 0);
    assert.equal(await takeN(store, [req('ip-messages', ip, 2, 8)], 9, T0 + 1000), 2);
  });

  it('remembers when a key was first seen, for its TTL', async () => {
    const key = `fp-${Math.random().toString(16).slice(2)}`;
    assert.equal(await store.firstSeen(key, T0, 60_000), T0, 'the first time: now');
    assert.equal(await store.firstSeen(key, T0 + 5_000, 60_000), T0, 'later: the first time');
    assert.equal(await store.firstSeen(`${key}-other`, T0 + 5_000, 60_000), T0 + 5_000, 'another key: its own first time');
  });

  it('reports itself healthy', () => {
    assert.deepEqual(store.health(), { ok: true });
  });
}
