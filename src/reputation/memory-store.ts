/**
 * The embedded store: one node, no Redis. Same behaviour as the Redis store (the same test
 * suite runs against both), bounded in memory: two LRU caches with a maximum entry count and
 * per-entry TTLs (a bucket lives until it would be full again, a score for scoreTtl).
 *
 * lru-cache measures TTLs with `perf.now()`; we feed it the `now` of the latest call, so
 * expiry follows the same (injected) time as the arithmetic and tests stay deterministic.
 */
import { LRUCache } from 'lru-cache';
import { gcraRelease, gcraTake, gcraTokens } from './gcra.ts';
import { bucketKey, limitersFor, scoreKey } from './keys.ts';
import { applyDelta, readScore, type ScoreParams } from './scores.ts';
import type { BucketRequest, RateStore, Reservation, ScoreState, Subject, TakeResult } from './types.ts';

export interface MemoryStoreOptions {
  readonly score: ScoreParams;
  /** Most buckets kept (least recently used go first; a dropped bucket is a full one). */
  readonly maxBuckets?: number;
  /** Most scores kept. */
  readonly maxScores?: number;
}

interface Bucket { tat: number; interval: number; burst: number }
interface StoredScore { s: number; n: number; t: number }

export function createMemoryStore(opts: MemoryStoreOptions): RateStore {
  let clockNow = 0;
  const perf = { now: (): number => clockNow };
  const tick = (now: number): void => { clockNow = now; };
  // ttlResolution 0: read perf.now() every time instead of caching it behind a timer.
  const buckets = new LRUCache<string, Bucket>({ max: opts.maxBuckets ?? 100_000, perf, ttlResolution: 0, ttlAutopurge: false });
  const scores = new LRUCache<string, StoredScore>({ max: opts.maxScores ?? 100_000, perf, ttlResolution: 0, ttlAutopurge: false });
  const seen = new LRUCache<string, number>({ max: opts.maxScores ?? 100_000, perf, ttlResolution: 0, ttlAutopurge: false });
  const keyOf = (r: BucketRequest): string => bucketKey('', r.limiter, r.subject);

  const store: RateStore = {
    take(requests: readonly BucketRequest[], now: number): Promise<TakeResult> {
      tick(now);
      // Same order and staging as scripts/take.lua: evaluate all, take only if none denies.
      const staged = new Map<string, Bucket>();
      let worst: { index: number; retryAfterMs: number } | null = null;
      requests.forEach((r, index) => {
        const key = keyOf(r);
        const tat = staged.get(key)?.tat ?? buckets.get(key)?.tat ?? null;
        const res = gcraTake(tat, r, now);
        if (!res.allowed) {
          if (worst === null || res.retryAfterMs > worst.retryAfterMs) worst = { index, retryAfterMs: res.retryAfterMs };
        } else {
          staged.set(key, { tat: res.tat, interval: 1000 / r.ratePerSecond, burst: r.burst });
        }
      });
      const denied = worst as { index: number; retryAfterMs: number } | null;
      if (denied !== null) {
        return Promise.resolve({ allowed: false, limitedBy: requests[denied.index]!.limiter, retryAfterMs: denied.retryAfterMs });
      }
      for (const [key, b] of staged) buckets.set(key, b, { ttl: Math.max(1, Math.ceil(b.tat - now)) });
      return Promise.resolve({ allowed: true, reservation: { taken: requests } });
    },

    release(reservation: Reservation, now: number): Promise<void> {
      tick(now);
      for (const r of reservation.taken) {
        const key = keyOf(r);
        const b = buckets.get(key);
        const next = gcraRelease(b?.tat ?? null, r, now);
        if (!b || next === null) buckets.delete(key);
        else buckets.set(key, { ...b, tat: next.tat }, { ttl: next.ttlMs });
      }
      return Promise.resolve();
    },

    scores(subjects: readonly Subject[], now: number): Promise<ScoreState[]> {
      tick(now);
      return Promise.resolve(subjects.map((s) => readScore(s, scores.get(scoreKey('', s)) ?? null, now, opts.score.halfLifeMs)));
    },

    learn(updates, now): Promise<void> {
      tick(now);
      for (const u of updates) {
        const key = scoreKey('', u.subject);
        scores.set(key, applyDelta(scores.get(key) ?? null, u.delta, now, opts.score.halfLifeMs), { ttl: opts.score.ttlMs });
      }
      return Promise.resolve();
    },

    firstSeen(key: string, now: number, ttlMs: number): Promise<number> {
      tick(now);
      const first = seen.get(key);
      if (first !== undefined) return Promise.resolve(first);
      seen.set(key, now, { ttl: ttlMs });
      return Promise.resolve(now);
    },

    async inspect(subject: Subject, now: number) {
      const [score] = await store.scores([subject], now);
      const found = limitersFor(subject.kind).flatMap((limiter) => {
        const b = buckets.get(bucketKey('', limiter, subject));
        return b ? [{ limiter, tokens: gcraTokens(b.tat, b.interval, b.burst, now), burst: b.burst }] : [];
      });
      return { score: score!, buckets: found };
    },

    reset(subject: Subject): Promise<number> {
      let n = scores.delete(scoreKey('', subject)) ? 1 : 0;
      for (const limiter of limitersFor(subject.kind)) if (buckets.delete(bucketKey('', limiter, subject))) n++;
      return Promise.resolve(n);
    },

    health: () => ({ ok: true }),

    close(): Promise<void> {
      buckets.clear();
      scores.clear();
      seen.clear();
      return Promise.resolve();
    },
  };
  return store;
}
