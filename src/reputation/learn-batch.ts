/**
 * Learning for the Redis store, gathered into batches: what is learnt within LEARN_BATCH_MS
 * (or until LEARN_BATCH_MAX outcomes wait) goes out together, each score key's outcomes in the
 * order they were learnt, so `send` can make one script call per subject (redis-store.ts).
 */

/** How long learning is gathered before it is sent, and how many outcomes at most. */
const LEARN_BATCH_MS = 10;
const LEARN_BATCH_MAX = 512;

/** Outcomes by score key, in the order they were learnt: [now, delta, now, delta, …]. */
export type PendingLearning = ReadonlyMap<string, readonly number[]>;

interface Batch {
  readonly promise: Promise<void>;
  readonly timer: NodeJS.Timeout;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export class LearnBatch {
  readonly #send: (pending: PendingLearning) => Promise<unknown>;
  #pending = new Map<string, number[]>();
  #queued = 0;
  #batch: Batch | null = null;

  constructor(send: (pending: PendingLearning) => Promise<unknown>) {
    this.#send = send;
  }

  /** Queues the outcomes; the promise settles when the batch they went out in is sent (or failed). */
  add(updates: ReadonlyArray<{ readonly key: string; readonly delta: number }>, now: number): Promise<void> {
    for (const u of updates) {
      const pairs = this.#pending.get(u.key);
      if (pairs) pairs.push(now, u.delta);
      else this.#pending.set(u.key, [now, u.delta]);
    }
    this.#queued += updates.length;
    if (!this.#batch) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
      this.#batch = { promise, resolve, reject, timer: setTimeout(() => void this.flush().catch(() => undefined), LEARN_BATCH_MS) };
    }
    const { promise } = this.#batch;
    if (this.#queued >= LEARN_BATCH_MAX) void this.flush().catch(() => undefined);
    return promise;
  }

  /** Sends what waits now (the batch's timer or size, or closing the store). */
  flush(): Promise<void> {
    if (!this.#batch) return Promise.resolve();
    const { resolve, reject, timer, promise } = this.#batch;
    clearTimeout(timer);
    const sending = this.#pending;
    this.#batch = null;
    this.#pending = new Map();
    this.#queued = 0;
    this.#send(sending).then(() => resolve(), reject);
    return promise;
  }
}
