/**
 * The shared store: GCRA buckets and decaying scores in Redis (single server, Sentinel or
 * Cluster), so every gateway node enforces the same limits.
 *
 * One script call per SMTP step on a single server or Sentinel: the step's buckets (IP and
 * network, say) go in one take.lua call, atomic across them. Every number travels in ARGV and
 * KEYS holds only real keys.
 *
 * Cluster safety (STYLE §4.9): on a Cluster each script call carries only the real keys of ONE
 * subject, which share the subject's hash tag and so one slot. A take over several subjects is
 * then one script call per subject, sent together (auto-pipelined: one round trip per node).
 * If any subject denies, what the others took is released again, so the result is
 * all-or-nothing. Between the take and that release, a concurrent take may see the tokens
 * briefly gone: it errs on the strict side, for one round trip, and the tokens come back.
 *
 * Learning is batched: what is learnt within LEARN_BATCH_MS goes out together, one script call
 * per subject carrying its outcomes in order (learn.lua applies them one by one, as separate
 * calls would), so a busy sender's messages cost one learning call per subject per batch
 * instead of three per message. Nothing waits for it but the caller's own promise.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { gcraTokens } from './gcra.ts';
import { bucketKey, checkKeyPrefix, firstSeenKey, limitersFor, scoreKey, subjectText } from './keys.ts';
import type { RedisClient } from './redis-connect.ts';
import { readScore, SCORE_BOUND, type ScoreParams } from './scores.ts';
import type { BucketRequest, Limiter, RateStore, Reservation, ScoreState, StoreObserver, Subject, TakeResult } from './types.ts';

export interface RedisStoreOptions {
  readonly client: RedisClient;
  readonly keyPrefix: string;
  readonly score: ScoreParams;
  readonly observer?: StoreObserver;
}

export interface RedisStore extends RateStore {
  readonly client: RedisClient;
  /** The connection is up (commands are sent rather than refused at once). */
  isReady(): boolean;
  /** Counts 'ready' events: a new connection since a failure was seen. */
  readyEpoch(): number;
}

type ScriptReply = [0] | [1, number, number];
type ScriptCall<T> = (...args: Array<string | number>) => Promise<T>;

/**
 * Most buckets one script call may carry. Each key count is its own command with a fixed
 * numberOfKeys, so the first argument is always a key: ioredis' auto-pipelining routes a
 * command by its first argument, and a leading key count would send it to the wrong node.
 */
const MAX_KEYS_PER_CALL = 8;

/** How long learning is gathered before it is sent, and how many outcomes at most. */
const LEARN_BATCH_MS = 10;
const LEARN_BATCH_MAX = 512;

/** Read once at startup; ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT. */
function script(name: string): string {
  return readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
}

/** Requests of one subject stay together (one slot, one script call); `index` is the position in the take. */
function bySubject(requests: readonly BucketRequest[]): Array<Array<{ r: BucketRequest; index: number }>> {
  const groups = new Map<string, Array<{ r: BucketRequest; index: number }>>();
  requests.forEach((r, index) => {
    const k = subjectText(r.subject);
    const g = groups.get(k);
    if (g) g.push({ r, index });
    else groups.set(k, [{ r, index }]);
  });
  return [...groups.values()];
}

export function createRedisStore(opts: RedisStoreOptions): RedisStore {
  const { client, observer } = opts;
  const prefix = checkKeyPrefix(opts.keyPrefix);
  const [takeLua, releaseLua] = [script('take'), script('release')];
  for (let n = 1; n <= MAX_KEYS_PER_CALL; n++) {
    client.defineCommand(`posternTake${n}`, { numberOfKeys: n, lua: takeLua });
    client.defineCommand(`posternRelease${n}`, { numberOfKeys: n, lua: releaseLua });
  }
  client.defineCommand('posternLearn', { numberOfKeys: 1, lua: script('learn') });
  const commands = client as unknown as Record<string, ScriptCall<unknown>>;
  const call = <T>(name: 'posternTake' | 'posternRelease', group: ReadonlyArray<{ r: BucketRequest }>, now: number): Promise<T> => {
    if (group.length > MAX_KEYS_PER_CALL) throw new Error(`more than ${MAX_KEYS_PER_CALL} buckets for one subject`);
    return commands[`${name}${group.length}`]!(...argvOf(group, now)) as Promise<T>;
  };
  const learnScript: ScriptCall<string> = (...args) => commands.posternLearn!(...args) as Promise<string>;
  /** The script calls of one step: per subject on a Cluster (one slot each), else all in one. */
  const cluster = (client as { isCluster?: boolean }).isCluster === true;
  const callsFor = (requests: readonly BucketRequest[]): Array<Array<{ r: BucketRequest; index: number }>> => {
    if (cluster) return bySubject(requests);
    const all = requests.map((r, index) => ({ r, index }));
    const calls = [];
    for (let i = 0; i < all.length; i += MAX_KEYS_PER_CALL) calls.push(all.slice(i, i + MAX_KEYS_PER_CALL));
    return calls;
  };

  /** Outcomes waiting to be sent, by score key, in the order they were learnt: [now, delta]… */
  let pending = new Map<string, number[]>();
  let queued = 0;
  let batch: { promise: Promise<void>; timer: NodeJS.Timeout; resolve: () => void; reject: (e: unknown) => void } | null = null;
  const flushLearning = (): Promise<void> => {
    if (!batch) return Promise.resolve();
    const { resolve, reject, timer, promise } = batch;
    clearTimeout(timer);
    const sending = pending;
    batch = null;
    pending = new Map();
    queued = 0;
    const { halfLifeMs, ttlMs } = opts.score;
    timed('learn', () => Promise.all([...sending].map(([key, pairs]) => learnScript(key, halfLifeMs, SCORE_BOUND, Math.ceil(ttlMs), ...pairs))))
      .then(() => resolve(), reject);
    return promise;
  };

  let lastError: string | null = null;
  let epoch = 0;
  client.on('ready', () => { epoch++; lastError = null; });
  // ioredis emits 'error' for connection problems; without a listener Node would throw.
  client.on('error', (err: Error) => { lastError = err.message; });

  async function timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const out = await fn();
      lastError = null;
      return out;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      observer?.storeError(op);
      throw err;
    } finally {
      observer?.storeLatency(op, (performance.now() - start) / 1000);
    }
  }

  const argvOf = (group: ReadonlyArray<{ r: BucketRequest }>, now: number): Array<string | number> => [
    ...group.map(({ r }) => bucketKey(prefix, r.limiter, r.subject)),
    now,
    ...group.flatMap(({ r }) => [r.ratePerSecond, r.burst, r.cost]),
  ];

  const releaseGroups = (groups: ReadonlyArray<ReadonlyArray<{ r: BucketRequest }>>, now: number): Promise<number[]> =>
    Promise.all(groups.map((g) => call<number>('posternRelease', g, now)));

  const store: RedisStore = {
    client,
    isReady: () => client.status === 'ready',
    readyEpoch: () => epoch,

    take(requests: readonly BucketRequest[], now: number): Promise<TakeResult> {
      return timed('take', async () => {
        if (requests.length === 0) return { allowed: true, reservation: { taken: [] } };
        const groups = callsFor(requests);
        const settled = await Promise.allSettled(groups.map((g) => call<ScriptReply>('posternTake', g, now)));
        const took = groups.filter((_, i) => settled[i]!.status === 'fulfilled' && (settled[i] as PromiseFulfilledResult<ScriptReply>).value[0] === 0);
        const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        let denied: { index: number; retryAfterMs: number } | null = null;
        settled.forEach((s, gi) => {
          if (s.status !== 'fulfilled' || s.value[0] !== 1) return;
          const index = groups[gi]![s.value[1] - 1]!.index;
          const retryAfterMs = Number(s.value[2]);
          if (denied === null || retryAfterMs > denied.retryAfterMs || (retryAfterMs === denied.retryAfterMs && index < denied.index)) {
            denied = { index, retryAfterMs };
          }
        });
        if (failed || denied) {
          // All or nothing: give back what the other subjects took.
          if (took.length > 0) await releaseGroups(took, now);
          if (failed) throw failed.reason;
          const d = denied as unknown as { index: number; retryAfterMs: number };
          return { allowed: false, limitedBy: requests[d.index]!.limiter, retryAfterMs: d.retryAfterMs };
        }
        return { allowed: true, reservation: { taken: requests } };
      });
    },

    release(reservation: Reservation, now: number): Promise<void> {
      if (reservation.taken.length === 0) return Promise.resolve();
      return timed('release', async () => { await releaseGroups(callsFor(reservation.taken), now); });
    },

    scores(subjects: readonly Subject[], now: number): Promise<ScoreState[]> {
      return timed('scores', () => Promise.all(subjects.map(async (s) => {
        const [sc, n, t] = await client.hmget(scoreKey(prefix, s), 's', 'n', 't');
        const stored = sc == null ? null : { s: Number(sc), n: Number(n ?? 0), t: Number(t ?? now) };
        return readScore(s, stored, now, opts.score.halfLifeMs);
      })));
    },

    learn(updates, now): Promise<void> {
      if (updates.length === 0) return Promise.resolve();
      for (const u of updates) {
        const key = scoreKey(prefix, u.subject);
        const pairs = pending.get(key);
        if (pairs) pairs.push(now, u.delta);
        else pending.set(key, [now, u.delta]);
      }
      queued += updates.length;
      if (!batch) {
        let resolve!: () => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
        batch = { promise, resolve, reject, timer: setTimeout(() => void flushLearning().catch(() => undefined), LEARN_BATCH_MS) };
      }
      const { promise } = batch;
      if (queued >= LEARN_BATCH_MAX) void flushLearning().catch(() => undefined);
      return promise;
    },

    firstSeen(key: string, now: number, ttlMs: number): Promise<number> {
      // One round trip: SET NX with GET (Redis >= 7.0) stores now unless a time is there, and
      // returns the time that was there.
      return timed('first-seen', async () => {
        const before = await client.call('SET', firstSeenKey(prefix, key), String(now), 'PX', String(Math.max(1, Math.ceil(ttlMs))), 'NX', 'GET') as string | null;
        return before === null ? now : Number(before);
      });
    },

    inspect(subject: Subject, now: number) {
      return timed('inspect', async () => {
        const limiters = limitersFor(subject.kind);
        const [score, rows] = await Promise.all([
          store.scores([subject], now),
          Promise.all(limiters.map((l) => client.hmget(bucketKey(prefix, l, subject), 'tat', 'interval', 'burst'))),
        ]);
        const buckets: Array<{ limiter: Limiter; tokens: number; burst: number }> = [];
        rows.forEach(([tat, interval, burst], i) => {
          if (tat == null || interval == null || burst == null) return;
          buckets.push({ limiter: limiters[i]!, tokens: gcraTokens(Number(tat), Number(interval), Number(burst), now), burst: Number(burst) });
        });
        return { score: score[0]!, buckets };
      });
    },

    reset(subject: Subject): Promise<number> {
      // One DEL: all of a subject's keys share its hash tag, so this is a single-slot command.
      return timed('reset', () => client.del(scoreKey(prefix, subject), ...limitersFor(subject.kind).map((l) => bucketKey(prefix, l, subject))));
    },

    health() {
      if (client.status !== 'ready') return { ok: false, error: `redis ${client.status}${lastError ? `: ${lastError}` : ''}` };
      if (lastError !== null) return { ok: false, error: lastError };
      return { ok: true };
    },

    async close(): Promise<void> {
      await flushLearning().catch(() => undefined); // what was learnt last is not lost
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
  return store;
}
