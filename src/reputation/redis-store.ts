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
 * Learning is batched (learn-batch.ts): what is learnt within LEARN_BATCH_MS goes out
 * together, one script call per subject carrying its outcomes in order (learn.lua applies them
 * one by one, as separate calls would), so a busy sender's messages cost one learning call per
 * subject per batch instead of three per message. Nothing waits for it but the caller's own
 * promise.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { gcraTokens } from './gcra.ts';
import { bucketKey, checkKeyPrefix, firstSeenKey, limitersFor, scoreKey, subjectText } from './keys.ts';
import type { RedisClient } from './redis-connect.ts';
import { readScore, SCORE_BOUND, type ScoreParams } from './scores.ts';
import type { BucketRequest, Limiter, RateStore, StoreObserver, Subject, TakeResult } from './types.ts';
import { LearnBatch } from './learn-batch.ts';

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
/** One script call's buckets; `index` is each one's position in the take. */
type Group = ReadonlyArray<{ r: BucketRequest; index: number }>;

/**
 * Most buckets one script call may carry. Each key count is its own command with a fixed
 * numberOfKeys, so the first argument is always a key: ioredis' auto-pipelining routes a
 * command by its first argument, and a leading key count would send it to the wrong node.
 */
const MAX_KEYS_PER_CALL = 8;

/** Read once at startup; ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT. */
function script(name: string): string {
  return readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
}

export function createRedisStore(opts: RedisStoreOptions): RedisStore {
  const { client } = opts;
  const prefix = checkKeyPrefix(opts.keyPrefix);
  const scripts = defineScripts(client, prefix);
  const watch = watchClient(client, opts.observer);
  const { score } = opts;
  const learning = new LearnBatch((pending) => watch.timed('learn', () => Promise.all(
    [...pending].map(([key, pairs]) => scripts.learn(key, score.halfLifeMs, SCORE_BOUND, Math.ceil(score.ttlMs), ...pairs)))));

  const store: RedisStore = {
    client,
    isReady: () => client.status === 'ready',
    readyEpoch: () => watch.epoch(),
    take: (requests, now) => watch.timed('take', () => takeAll(scripts, requests, now)),
    release(reservation, now) {
      if (reservation.taken.length === 0) return Promise.resolve();
      return watch.timed('release', async () => { await scripts.release(scripts.calls(reservation.taken), now); });
    },
    scores(subjects, now) {
      return watch.timed('scores', () => Promise.all(subjects.map(async (s) => {
        const [sc, n, t] = await client.hmget(scoreKey(prefix, s), 's', 'n', 't');
        const stored = sc == null ? null : { s: Number(sc), n: Number(n ?? 0), t: Number(t ?? now) };
        return readScore(s, stored, now, score.halfLifeMs);
      })));
    },
    learn(updates, now) {
      if (updates.length === 0) return Promise.resolve();
      return learning.add(updates.map((u) => ({ key: scoreKey(prefix, u.subject), delta: u.delta })), now);
    },
    firstSeen(key, now, ttlMs) {
      // One round trip: SET NX with GET (Redis >= 7.0) stores now unless a time is there, and
      // returns the time that was there.
      return watch.timed('first-seen', async () => {
        const before = await client.call('SET', firstSeenKey(prefix, key), String(now), 'PX', String(Math.max(1, Math.ceil(ttlMs))), 'NX', 'GET') as string | null;
        return before === null ? now : Number(before);
      });
    },
    inspect(subject, now) {
      return watch.timed('inspect', async () => {
        const [[state], buckets] = await Promise.all([store.scores([subject], now), bucketsOf(client, prefix, subject, now)]);
        return { score: state!, buckets };
      });
    },
    reset(subject) {
      // One DEL: all of a subject's keys share its hash tag, so this is a single-slot command.
      return watch.timed('reset', () => client.del(scoreKey(prefix, subject), ...limitersFor(subject.kind).map((l) => bucketKey(prefix, l, subject))));
    },
    health() {
      const lastError = watch.lastError();
      if (client.status !== 'ready') return { ok: false, error: `redis ${client.status}${lastError ? `: ${lastError}` : ''}` };
      if (lastError !== null) return { ok: false, error: lastError };
      return { ok: true };
    },
    async close(): Promise<void> {
      await learning.flush().catch(() => undefined); // what was learnt last is not lost
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
  return store;
}

/** The take and release scripts (one command per key count) and the learning script, defined on the client. */
interface Scripts {
  /** The script calls of one step: per subject on a Cluster (one slot each), else all in one. */
  calls(requests: readonly BucketRequest[]): Group[];
  take(group: Group, now: number): Promise<ScriptReply>;
  release(groups: readonly Group[], now: number): Promise<number[]>;
  learn: ScriptCall<string>;
}

function defineScripts(client: RedisClient, prefix: string): Scripts {
  const [takeLua, releaseLua] = [script('take'), script('release')];
  for (let n = 1; n <= MAX_KEYS_PER_CALL; n++) {
    client.defineCommand(`posternTake${n}`, { numberOfKeys: n, lua: takeLua });
    client.defineCommand(`posternRelease${n}`, { numberOfKeys: n, lua: releaseLua });
  }
  client.defineCommand('posternLearn', { numberOfKeys: 1, lua: script('learn') });
  const commands = client as unknown as Record<string, ScriptCall<unknown>>;
  const call = <T>(name: 'posternTake' | 'posternRelease', group: Group, now: number): Promise<T> => {
    if (group.length > MAX_KEYS_PER_CALL) throw new Error(`more than ${MAX_KEYS_PER_CALL} buckets for one subject`);
    return commands[`${name}${group.length}`]!(...argvOf(prefix, group, now)) as Promise<T>;
  };
  const cluster = (client as { isCluster?: boolean }).isCluster === true;
  return {
    calls: (requests) => (cluster ? bySubject(requests) : inChunks(requests)),
    take: (group, now) => call<ScriptReply>('posternTake', group, now),
    release: (groups, now) => Promise.all(groups.map((g) => call<number>('posternRelease', g, now))),
    learn: (...args) => commands.posternLearn!(...args) as Promise<string>,
  };
}

/** KEYS are the buckets' real keys; ARGV is now, then rate, burst and cost of each bucket (take.lua, release.lua). */
function argvOf(prefix: string, group: Group, now: number): Array<string | number> {
  return [
    ...group.map(({ r }) => bucketKey(prefix, r.limiter, r.subject)),
    now,
    ...group.flatMap(({ r }) => [r.ratePerSecond, r.burst, r.cost]),
  ];
}

/** Requests of one subject stay together (one slot, one script call). */
function bySubject(requests: readonly BucketRequest[]): Group[] {
  const groups = new Map<string, Array<{ r: BucketRequest; index: number }>>();
  requests.forEach((r, index) => {
    const k = subjectText(r.subject);
    const g = groups.get(k);
    if (g) g.push({ r, index });
    else groups.set(k, [{ r, index }]);
  });
  return [...groups.values()];
}

/** Off a Cluster: the requests in order, MAX_KEYS_PER_CALL to a call. */
function inChunks(requests: readonly BucketRequest[]): Group[] {
  const all = requests.map((r, index) => ({ r, index }));
  const calls = [];
  for (let i = 0; i < all.length; i += MAX_KEYS_PER_CALL) calls.push(all.slice(i, i + MAX_KEYS_PER_CALL));
  return calls;
}

/**
 * All buckets of a step, all or nothing across the script calls (see the top of this file).
 * The denial reported is the longest wait, the earliest bucket among equal waits.
 */
async function takeAll(scripts: Scripts, requests: readonly BucketRequest[], now: number): Promise<TakeResult> {
  if (requests.length === 0) return { allowed: true, reservation: { taken: [] } };
  const groups = scripts.calls(requests);
  const settled = await Promise.allSettled(groups.map((g) => scripts.take(g, now)));
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
    if (took.length > 0) await scripts.release(took, now);
    if (failed) throw failed.reason;
    const d = denied as unknown as { index: number; retryAfterMs: number };
    return { allowed: false, limitedBy: requests[d.index]!.limiter, retryAfterMs: d.retryAfterMs };
  }
  return { allowed: true, reservation: { taken: requests } };
}

/** The subject's buckets that exist, with the tokens they hold at `now` (operator tools). */
async function bucketsOf(client: RedisClient, prefix: string, subject: Subject, now: number): Promise<Array<{ limiter: Limiter; tokens: number; burst: number }>> {
  const limiters = limitersFor(subject.kind);
  const rows = await Promise.all(limiters.map((l) => client.hmget(bucketKey(prefix, l, subject), 'tat', 'interval', 'burst')));
  const buckets: Array<{ limiter: Limiter; tokens: number; burst: number }> = [];
  rows.forEach(([tat, interval, burst], i) => {
    if (tat == null || interval == null || burst == null) return;
    buckets.push({ limiter: limiters[i]!, tokens: gcraTokens(Number(tat), Number(interval), Number(burst), now), burst: Number(burst) });
  });
  return buckets;
}

/**
 * The connection's last error (null once a command succeeds or a new connection is ready)
 * and its count of 'ready' events, and `timed`, which measures each operation and counts its
 * errors for the observer.
 */
function watchClient(client: RedisClient, observer: StoreObserver | undefined) {
  let lastError: string | null = null;
  let epoch = 0;
  client.on('ready', () => { epoch++; lastError = null; });
  // ioredis emits 'error' for connection problems; without a listener Node would throw.
  client.on('error', (err: Error) => { lastError = err.message; });
  return {
    epoch: () => epoch,
    lastError: () => lastError,
    timed: async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
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
    },
  };
}
