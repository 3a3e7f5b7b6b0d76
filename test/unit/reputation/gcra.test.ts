import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gcraRelease, gcraTake, gcraTokens, intervalMs, type GcraParams } from '../../../src/reputation/gcra.ts';

const T0 = 1_700_000_000_000;

/** A bucket driven by the pure functions with a fake clock. */
function bucket(p: GcraParams) {
  let tat: number | null = null;
  return {
    take(now: number) {
      const res = gcraTake(tat, p, now);
      if (res.allowed) tat = res.tat;
      return res;
    },
    release(now: number) {
      tat = gcraRelease(tat, p, now)?.tat ?? null;
    },
    tokens: (now: number) => gcraTokens(tat, intervalMs(p), p.burst, now),
  };
}

describe('GCRA arithmetic', () => {
  it('admits the burst at once, then cuts', () => {
    const b = bucket({ ratePerSecond: 10, burst: 5, cost: 1 });
    for (let i = 0; i < 5; i++) assert.equal(b.take(T0).allowed, true);
    assert.deepEqual(b.take(T0), { allowed: false, retryAfterMs: 100 });
    assert.equal(b.tokens(T0), 0);
  });

  it('admits exactly the steady rate', () => {
    const b = bucket({ ratePerSecond: 1, burst: 1, cost: 1 });
    let admitted = 0;
    for (let ms = 0; ms < 60_000; ms += 250) if (b.take(T0 + ms).allowed) admitted++;
    assert.equal(admitted, 60);
  });

  it('recovers after waiting, and never beyond the burst', () => {
    const b = bucket({ ratePerSecond: 2, burst: 4, cost: 1 });
    for (let i = 0; i < 4; i++) b.take(T0);
    assert.equal(b.tokens(T0 + 1000), 2);
    assert.equal(b.tokens(T0 + 86_400_000), 4);
    let n = 0;
    while (b.take(T0 + 86_400_000).allowed) n++;
    assert.equal(n, 4);
  });

  it('gives an exact retry time that is then admitted', () => {
    const b = bucket({ ratePerSecond: 4, burst: 2, cost: 1 });
    b.take(T0);
    b.take(T0);
    const denied = b.take(T0 + 100);
    assert.deepEqual(denied, { allowed: false, retryAfterMs: 150 });
    assert.equal(b.take(T0 + 249).allowed, false);
    assert.equal(b.take(T0 + 250).allowed, true);
  });

  it('rounds a fractional retry up, so retrying on time is always admitted', () => {
    const p = { ratePerSecond: 3, burst: 1, cost: 1 };
    const first = gcraTake(null, p, T0);
    assert.ok(first.allowed);
    const denied = gcraTake(first.tat, p, T0);
    assert.deepEqual(denied, { allowed: false, retryAfterMs: 334 });
    assert.equal(gcraTake(first.tat, p, T0 + 334).allowed, true);
  });

  it('charges costs above 1', () => {
    const b = bucket({ ratePerSecond: 1, burst: 10, cost: 3 });
    assert.equal(b.take(T0).allowed, true);
    assert.equal(b.take(T0).allowed, true);
    assert.equal(b.take(T0).allowed, true);
    assert.deepEqual(b.take(T0), { allowed: false, retryAfterMs: 2000 });
    assert.equal(b.tokens(T0), 1);
  });

  it('release gives tokens back and never fills beyond the burst', () => {
    const b = bucket({ ratePerSecond: 1, burst: 3, cost: 1 });
    b.take(T0);
    b.take(T0);
    b.release(T0);
    assert.equal(b.tokens(T0), 2);
    b.release(T0);
    b.release(T0);
    b.release(T0);
    assert.equal(b.tokens(T0), 3);
    assert.equal(gcraRelease(null, { ratePerSecond: 1, burst: 3, cost: 1 }, T0), null);
  });

  it('sets the TTL to the time until the bucket is full again', () => {
    const res = gcraTake(null, { ratePerSecond: 0.5, burst: 10, cost: 1 }, T0);
    assert.deepEqual(res, { allowed: true, tat: T0 + 2000, ttlMs: 2000 });
    assert.deepEqual(gcraRelease(T0 + 4000, { ratePerSecond: 0.5, burst: 10, cost: 1 }, T0), { tat: T0 + 2000, ttlMs: 2000 });
  });

  it('never admits a cost larger than the burst', () => {
    assert.equal(gcraTake(null, { ratePerSecond: 1, burst: 2, cost: 3 }, T0).allowed, false);
  });
});
