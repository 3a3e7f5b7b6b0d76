/**
 * The rate/reputation store of a node with workers and no Redis: the primary holds the one
 * memory store, workers ask it over IPC. So the limits are per node as the configuration says,
 * not per worker (N workers admitting N× the limit). With Redis configured, workers talk to
 * Redis themselves and none of this is used.
 *
 * Learning is a note (no answer awaited: nothing depends on it, as with Redis' fire-and-forget
 * learning). Everything else is a request; a primary that does not answer within the timeout
 * makes the step fail like a Redis timeout would (the pipeline answers 451 4.3.0).
 */
import type { RateStore, Reservation } from '../reputation/types.ts';
import { IpcError, type IpcChannel } from './ipc.ts';

export const STORE_REQUEST = 'store';
export const STORE_LEARN = 'store-learn';

/** Operations a worker may ask for. */
type Operation = 'take' | 'release' | 'scores' | 'firstSeen' | 'inspect' | 'reset';

interface StoreCall {
  readonly op: Operation;
  readonly args: readonly unknown[];
}

/** The worker's store: every call goes to the primary. */
export function createIpcStore(channel: IpcChannel, opts: { readonly timeoutMs: number }): RateStore {
  let lastError: string | null = null;
  const call = async <T>(op: Operation, ...args: unknown[]): Promise<T> => {
    try {
      const out = await channel.request<T>(STORE_REQUEST, { op, args } satisfies StoreCall, opts.timeoutMs);
      lastError = null;
      return out;
    } catch (err) {
      lastError = err instanceof IpcError ? `primary's rate store: ${err.message}` : String(err);
      throw err;
    }
  };
  return {
    take: (requests, now) => call('take', requests, now),
    release: (reservation: Reservation, now) => call('release', reservation, now),
    scores: (subjects, now) => call('scores', subjects, now),
    learn(updates, now) {
      channel.notify(STORE_LEARN, { updates, now });
      return Promise.resolve();
    },
    // first seen per node, like the limits (with Redis, per fleet)
    firstSeen: (key, now, ttlMs) => call('firstSeen', key, now, ttlMs),
    inspect: (subject, now) => call('inspect', subject, now),
    reset: (subject) => call('reset', subject),
    health: () => (lastError === null ? { ok: true } : { ok: false, error: lastError }),
    close: () => Promise.resolve(), // the primary owns the store
  };
}

/** The primary's side: answers a worker's store request from `store`. */
export function serveStoreRequest(store: RateStore, body: unknown): Promise<unknown> {
  const { op, args } = body as StoreCall;
  const a = args as never[];
  switch (op) {
    case 'take': return store.take(a[0]!, a[1]!);
    case 'release': return store.release(a[0]!, a[1]!);
    case 'scores': return store.scores(a[0]!, a[1]!);
    case 'firstSeen': return store.firstSeen(a[0]!, a[1]!, a[2]!);
    case 'inspect': return store.inspect(a[0]!, a[1]!);
    case 'reset': return store.reset(a[0]!);
    default: return Promise.reject(new Error(`unknown store operation ${String(op)}`));
  }
}

/** The primary's side of a learning note. */
export function serveStoreLearn(store: RateStore, body: unknown): void {
  const { updates, now } = body as { updates: Parameters<RateStore['learn']>[0]; now: number };
  store.learn(updates, now).catch(() => undefined); // the memory store does not fail
}
