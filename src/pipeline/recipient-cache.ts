/**
 * Backend refusals of recipients that hold for every sender, remembered for a short while by
 * address, so that retries and harvesting cost the backend nothing and its per-connection
 * error count stays low.
 *
 * Only a refusal that is about the mailbox itself is kept: RFC 3463 X.1.1 (no such mailbox),
 * X.1.6 (moved), X.1.10 (null MX, RFC 7505) and X.2.1 (disabled), and only a 5xx. Postfix
 * evaluates client and sender restrictions at RCPT too (smtpd_delay_reject), so a refusal that
 * names a sender or client reason (5.7.1, 5.1.8, …) must never be replayed to another sender:
 * an attacker whose domain the backend refuses would otherwise make a valid mailbox refuse
 * everybody. A refusal without an enhanced code says nothing about why: not kept. A transient
 * answer is never kept.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.ts';
import type { RecipientCache } from './deps.ts';
import type { BackendReply } from './state.ts';

const MAILBOX_CODES = new Set(['5.1.1', '5.1.6', '5.1.10', '5.2.1']);

/** The backend refusal says the mailbox does not take mail, whoever sends it. */
export function isMailboxRefusal(reply: BackendReply): boolean {
  return reply.code >= 500 && reply.code < 600 && reply.enhanced !== null && reply.enhanced !== undefined && MAILBOX_CODES.has(reply.enhanced);
}

export function createRecipientCache(opts: { clock: Clock; ttlSeconds: number; max?: number }): RecipientCache {
  if (opts.ttlSeconds <= 0) return { get: () => undefined, set: () => undefined };
  const cache = new LRUCache<string, BackendReply>({ max: opts.max ?? 50_000, ttl: opts.ttlSeconds * 1000, perf: { now: () => opts.clock.now() } });
  return {
    get: (address) => cache.get(address.toLowerCase()),
    set: (address, reply) => {
      if (isMailboxRefusal(reply)) cache.set(address.toLowerCase(), { code: reply.code, enhanced: reply.enhanced, text: reply.text });
    },
  };
}
