/**
 * When was this message first offered? Lets a rule tempfail on DNS trouble for a while and
 * accept after (first_seen_within). In-process and bounded; issue 3 shares it via Redis.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.ts';

export function createFirstSeen(opts: { clock: Clock; ttlSeconds: number; max?: number }): (fingerprint: string) => number {
  const cache = new LRUCache<string, number>({ max: opts.max ?? 100_000, ttl: opts.ttlSeconds * 1000, ttlAutopurge: false, perf: { now: () => opts.clock.now() } });
  return (fingerprint) => {
    const now = opts.clock.now();
    const first = cache.get(fingerprint);
    if (first === undefined) {
      cache.set(fingerprint, now);
      return 0;
    }
    return Math.floor((now - first) / 1000);
  };
}
