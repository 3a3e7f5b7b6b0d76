/**
 * Backend refusals of recipients (5xx to RCPT), remembered for a short while by address.
 * Only permanent refusals are kept: a 4xx may be gone on the next try. A mailbox created in
 * the meantime is refused for at most `ttlSeconds`.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.ts';
import type { BackendReply } from './state.ts';

export function createRecipientCache(opts: { clock: Clock; ttlSeconds: number; max?: number }): {
  get(address: string): BackendReply | undefined;
  set(address: string, reply: BackendReply): void;
} {
  if (opts.ttlSeconds <= 0) return { get: () => undefined, set: () => undefined };
  const cache = new LRUCache<string, BackendReply>({ max: opts.max ?? 50_000, ttl: opts.ttlSeconds * 1000, perf: { now: () => opts.clock.now() } });
  return {
    get: (address) => cache.get(address.toLowerCase()),
    set: (address, reply) => {
      if (reply.code >= 500) cache.set(address.toLowerCase(), { code: reply.code, enhanced: reply.enhanced, text: reply.text });
    },
  };
}
