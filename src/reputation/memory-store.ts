/**
 * The embedded store: one node, no Redis. Same behaviour as the Redis store (the same test
 * suite runs against both), bounded in memory: LRU caches with a maximum entry count and
 * per-entry TTLs (a bucket lives until it would be full again, a score for scoreTtl, a
 * first-seen time for the ttl it was asked with).
 *
 * lru-cache measures TTLs with `perf.now()`; we feed it the `now` of the latest call, so
 * expiry follows the same (injected) time as the arithmetic and tests stay deterministic.
 */
import { LRUCache } from 'lru-cache';
import { gcraRelease, gcraTake, gcraTokens } from './gcra.ts';
import { bucketKey, limitersFor, scoreKey } from './keys.ts';
import { applyDelta, readScore, type ScoreParams } from './scores.ts';
import type { BucketRequest, Limiter, RateStore, Reservation, Subject, TakeResult } from './types.ts';

export interface MemoryStoreOptions {
  readonly score: ScoreParams;
  /** Most buckets kept (least recently used go first; a dropped bucket is a full one). */
  readonly maxBuckets?: number;
  /** Most scores kept. */
  readonly maxScores?: number;
}

interface Bucket { tat: number; interval: number; burst: number }
interface StoredScore { s: number; n: number; t: number }

/**
 * The store's state: three LRU caches that all read the `now` of the latest call as their
 * time (`tick` sets it).
 */
interface Memory {
  readonly buckets: LRUCache<string, Bucket>;
  readonly scores: LRUCache<string, StoredScore>;
  readonly seen: LRUCache<string, number>;
  readonly score: ScoreParams;
  tick(now: number): void;
}

function openMemory(opts: MemoryStoreOptions): Memory {
  let clockNow = 0;
  const perf = { now: (): number => clockNow };
  // ttlResolution 0: read perf.now() every time instead of caching it behind a timer.
  const lru = <V extends object | number>(max: number): LRUCache<string, V> => new LRUCache<string, V>({ max, perf, ttlResolution: 0, ttlAutopurge: false });
  return {
    buckets: lru<Bucket>(opts.maxBuckets ?? 100_000),
    scores: lru<StoredScore>(opts.maxScores ?? 100_000),
    seen: lru<number>(opts.maxScores ?? 100_000),
    score: opts.score,
    tick: (now) => { clockNow = now; },
  };
}

const keyOf = (r: BucketRequest): string => bucketKey('', r.limiter, r.subject);

export function createMemoryStore(opts: MemoryStoreOptions): RateStore {
  const m = openMemory(opts);
  const store: RateStore = {
    take: (requests, now) => Promise.resolve(take(m, requests, now)),
    release(reservation, now) {
      release(m, reservation, now);
      return Promise.resolve();
    },
    scores(subjects, now) {
      m.tick(now);
      return Promise.resolve(subjects.map((s) => readScore(s, m.scores.get(scoreKey('', s)) ?? null, now, m.score.halfLifeMs)));
    },
    learn(updates, now) {
      m.tick(now);
      for (const u of updates) {
        const key = scoreKey('', u.subject);
        m.scores.set(key, applyDelta(m.scores.get(key) ?? null, u.delta, now, m.score.halfLifeMs), { ttl: m.score.ttlMs });
      }
      return Promise.resolve();
    },
    firstSeen(key, now, ttlMs) {
      m.tick(now);
      const first = m.seen.get(key);
      if (first !== undefined) return Promise.resolve(first);
      m.seen.set(key, now, { ttl: ttlMs });
      return Promise.resolve(now);
    },
    async inspect(subject, now) {
      const [score] = await store.scores([subject], now);
      return { score: score!, buckets: bucketsOf(m, subject, now) };
    },
    reset: (subject) => Promise.resolve(reset(m, subject)),
    health: () => ({ ok: true }),
    close(): Promise<void> {
      m.buckets.clear();
      m.scores.clear();
      m.seen.clear();
      return Promise.resolve();
    },
  };
  return store;
}

/** Same order and staging as scripts/take.lua: evaluate all, take only if none denies. */
function take(m: Memory, requests: readonly BucketRequest[], now: number): TakeResult {
  m.tick(now);
  const staged = new Map<string, Bucket>();
  let worst: { index: number; retryAfterMs: number } | null = null;
  requests.forEach((r, index) => {
    const key = keyOf(r);
    const tat = staged.get(key)?.tat ?? m.buckets.get(key)?.tat ?? null;
    const res = gcraTake(tat, r, now);
    if (!res.allowed) {
      if (worst === null || res.retryAfterMs > worst.retryAfterMs) worst = { index, retryAfterMs: res.retryAfterMs };
    } else {
      staged.set(key, { tat: res.tat, interval: 1000 / r.ratePerSecond, burst: r.burst });
    }
  });
  const denied = worst as { index: number; retryAfterMs: number } | null;
  if (denied !== null) {
    return { allowed: false, limitedBy: requests[denied.index]!.limiter, retryAfterMs: denied.retryAfterMs };
  }
  for (const [key, b] of staged) m.buckets.set(key, b, { ttl: Math.max(1, Math.ceil(b.tat - now)) });
  return { allowed: true, reservation: { taken: requests } };
}

function release(m: Memory, reservation: Reservation, now: number): void {
  m.tick(now);
  for (const r of reservation.taken) {
    const key = keyOf(r);
    const b = m.buckets.get(key);
    const next = gcraRelease(b?.tat ?? null, r, now);
    if (!b || next === null) m.buckets.delete(key);
    else m.buckets.set(key, { ...b, tat: next.tat }, { ttl: next.ttlMs });
  }
}

/** The subject's buckets that exist, with the tokens they hold at `now` (operator tools). */
function bucketsOf(m: Memory, subject: Subject, now: number): Array<{ limiter: Limiter; tokens: number; burst: number }> {
  return limitersFor(subject.kind).flatMap((limiter) => {
    const b = m.buckets.get(bucketKey('', limiter, subject));
    return b ? [{ limiter, tokens: gcraTokens(b.tat, b.interval, b.burst, now), burst: b.burst }] : [];
  });
}

function reset(m: Memory, subject: Subject): number {
  let n = m.scores.delete(scoreKey('', subject)) ? 1 : 0;
  for (const limiter of limitersFor(subject.kind)) if (m.buckets.delete(bucketKey('', limiter, subject))) n++;
  return n;
}
