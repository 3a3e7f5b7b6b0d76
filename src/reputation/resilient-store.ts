/**
 * Redis with a way out. While Redis answers, every call goes to it. When it does not (the
 * connection is down, a command errs or times out), the store keeps the mail flowing:
 *
 * - failMode 'open' (default): answer from a local memory store, so limits are still enforced,
 *   per node (N nodes admit up to N× the shared limit while Redis is away). Health reports
 *   the error for /readyz and metrics.
 * - failMode 'closed': a take is refused with `storeUnavailable` (the pipeline replies
 *   451 4.3.0 "try later"; never a 5xx, never a 250 we cannot account for).
 *
 * Scores and learning use the local store in both modes while Redis is away (a tier read must
 * not block mail). Recovery needs no operator: ioredis reconnects in the background, and once
 * it is ready the next call goes to Redis again. After an error on a live connection (a
 * timeout, say), calls stay local for failCooldownMs so a slow Redis is not waited on per call.
 */
import type { RedisStore } from './redis-store.ts';
import type { BucketRequest, RateStore, Reservation, ScoreState, Subject, TakeResult } from './types.ts';

export interface ResilientStoreOptions {
  readonly primary: RedisStore;
  /** Local store answering while Redis is away (a memory store). */
  readonly fallback: RateStore;
  readonly failMode: 'open' | 'closed';
  /** After an error on a live connection, stay local this long (ms of the injected `now`). */
  readonly failCooldownMs: number;
  /** Retry hint of a fail-closed refusal. */
  readonly closedRetryAfterMs?: number;
  /** Called when health changes (log it once, not per message). */
  readonly onHealthChange?: (health: { ok: true } | { ok: false; error: string }) => void;
}

export function createResilientStore(opts: ResilientStoreOptions): RateStore {
  const { primary, fallback } = opts;
  const router = new Router(opts);
  // Reservations taken locally must be given back locally.
  const local = new WeakSet<Reservation>();

  return {
    take(requests, now) {
      return router.route(now, () => primary.take(requests, now), async () => {
        if (opts.failMode === 'closed') return refuse(requests, opts.closedRetryAfterMs);
        const res = await fallback.take(requests, now);
        if (res.allowed) local.add(res.reservation);
        return res;
      });
    },

    async release(reservation, now) {
      if (local.has(reservation)) {
        local.delete(reservation);
        return fallback.release(reservation, now);
      }
      // Best effort: if Redis is away the tokens come back by themselves as time passes.
      if (!primary.isReady()) return;
      try {
        await primary.release(reservation, now);
      } catch {
        // counted by the Redis store's observer; nothing else to do
      }
    },

    scores(subjects: readonly Subject[], now: number): Promise<ScoreState[]> {
      return router.route(now, () => primary.scores(subjects, now), () => fallback.scores(subjects, now));
    },

    learn(updates, now) {
      return router.route(now, () => primary.learn(updates, now), () => fallback.learn(updates, now));
    },

    firstSeen(key, now, ttlMs) {
      return router.route(now, () => primary.firstSeen(key, now, ttlMs), () => fallback.firstSeen(key, now, ttlMs));
    },

    // Operator tools talk to Redis only: an operator must see an error, not the local view.
    inspect: (subject, now) => primary.inspect(subject, now),
    reset: (subject) => primary.reset(subject),

    health: () => router.health(),

    async close() {
      await Promise.all([primary.close(), fallback.close()]);
    },
  };
}

/** A fail-closed refusal: not the client's fault (storeUnavailable), retry later. */
function refuse(requests: readonly BucketRequest[], retryAfterMs = 60_000): TakeResult {
  return {
    allowed: false,
    limitedBy: requests[0]?.limiter ?? 'blocklist',
    retryAfterMs,
    storeUnavailable: true,
  };
}

/** Sends each call to Redis or to the local store, remembering the last failure for health. */
class Router {
  readonly #primary: RedisStore;
  readonly #failCooldownMs: number;
  readonly #onHealthChange: ResilientStoreOptions['onHealthChange'];
  /** Last error seen, and on which connection (readyEpoch) it happened. */
  #failure: { error: string; epoch: number; until: number } | null = null;
  #lastOk = true;

  constructor(opts: ResilientStoreOptions) {
    this.#primary = opts.primary;
    this.#failCooldownMs = opts.failCooldownMs;
    this.#onHealthChange = opts.onHealthChange;
  }

  async route<T>(now: number, viaPrimary: () => Promise<T>, viaFallback: () => Promise<T>): Promise<T> {
    if (this.#usePrimary(now)) {
      try {
        const out = await viaPrimary();
        this.#failure = null;
        this.#report();
        return out;
      } catch (err) {
        this.#failure = { error: err instanceof Error ? err.message : String(err), epoch: this.#primary.readyEpoch(), until: now + this.#failCooldownMs };
      }
    } else if (this.#failure === null) {
      const h = this.#primary.health();
      this.#failure = { error: h.ok ? 'redis not ready' : h.error, epoch: this.#primary.readyEpoch(), until: now };
    }
    this.#report();
    return viaFallback();
  }

  health(): { ok: true } | { ok: false; error: string } {
    const h = this.#primary.health();
    if (!this.#primary.isReady()) return h.ok ? { ok: false, error: 'redis not ready' } : h;
    if (this.#failure !== null && this.#failure.epoch === this.#primary.readyEpoch()) return { ok: false, error: this.#failure.error };
    return { ok: true };
  }

  /** Redis is worth asking: connected, and not the same connection that just failed within the cooldown. */
  #usePrimary(now: number): boolean {
    if (!this.#primary.isReady()) return false;
    if (this.#failure === null) return true;
    if (this.#failure.epoch !== this.#primary.readyEpoch() || now >= this.#failure.until) return true;
    return false;
  }

  #report(): void {
    const h = this.health();
    if (h.ok !== this.#lastOk) {
      this.#lastOk = h.ok;
      this.#onHealthChange?.(h);
    }
  }
}
