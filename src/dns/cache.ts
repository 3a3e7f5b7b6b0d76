import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.ts';
import type { DnsErrorCode } from './errors.ts';
import type { DnsAnswer } from './types.ts';

/** What is kept for a question: an answer, or a negative result (ENOTFOUND/ENODATA only). */
export type CachedOutcome =
  | { readonly ok: true; readonly answer: DnsAnswer }
  | { readonly ok: false; readonly code: DnsErrorCode };

interface Entry {
  readonly outcome: CachedOutcome;
  readonly expiresAt: number;
}

export interface AnswerCache {
  get(key: string): CachedOutcome | undefined;
  /** Keeps `outcome` for `ttlSeconds` by the injected clock; 0 or less keeps nothing. */
  set(key: string, outcome: CachedOutcome, ttlSeconds: number): void;
  clear(): void;
}

/**
 * Bounded LRU whose expiry follows the injected clock (not lru-cache's own timer), so tests
 * move time forward instead of sleeping. Size 0 disables caching.
 */
export function createAnswerCache(options: { readonly maxEntries: number; readonly clock: Clock }): AnswerCache {
  const { clock } = options;
  if (options.maxEntries <= 0) {
    return { get: () => undefined, set: () => undefined, clear: () => undefined };
  }
  const lru = new LRUCache<string, Entry>({ max: options.maxEntries });
  return {
    get(key) {
      const entry = lru.get(key);
      if (entry === undefined) return undefined;
      if (clock.now() >= entry.expiresAt) {
        lru.delete(key);
        return undefined;
      }
      return entry.outcome;
    },
    set(key, outcome, ttlSeconds) {
      if (!(ttlSeconds > 0)) return;
      lru.set(key, { outcome, expiresAt: clock.now() + ttlSeconds * 1000 });
    },
    clear() {
      lru.clear();
    },
  };
}
