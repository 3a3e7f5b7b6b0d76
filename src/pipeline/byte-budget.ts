/**
 * The global budget of message bytes held in memory (limits.maxBytesInFlight): Postern has no
 * spool, so every message being received or relayed is in memory. Past the budget, new
 * messages are deferred with 452 4.3.1 ("mail system full", RFC 3463) until bytes drain, so a
 * flood of large uploads cannot exhaust the heap: a message whose bytes cannot all be admitted
 * stops being kept (the rest of its upload is read and dropped) and is answered 452 at its end.
 * Bytes come back when the transaction ends (src/pipeline/end.ts), delivered or not.
 *
 * One client (an IP address; an IPv6 network of limits.ipv6PrefixLength) holds at most
 * `perClient` of it (limits.maxBytesInFlightPerClient): a few clients stalling large uploads
 * just before their end cannot hold the whole budget and lock everybody else out until their
 * data timeout.
 */
import { clientKey } from '../core/ip.ts';

export interface ByteBudget {
  /** Admits n more bytes for the client at `ip` if they fit under both budgets. */
  tryTake(ip: string, n: number): boolean;
  give(ip: string, n: number): void;
  /** Bytes held now, and the budget. */
  readonly inUse: number;
  readonly max: number;
  /** True when no new message should start, for anyone or for this client: what is left would not hold a small one. */
  full(ip?: string): boolean;
}

export function createByteBudget(opts: { max: number; perClient: number; ipv6PrefixLength: number }, onChange?: (inUse: number) => void): ByteBudget {
  const { max, perClient } = opts;
  let inUse = 0;
  const byClient = new Map<string, number>();
  const key = (ip: string): string => clientKey(ip, opts.ipv6PrefixLength);
  const room = (limit: number, used: number): boolean => limit - used >= Math.min(65_536, limit / 16);
  return {
    tryTake(ip, n) {
      const k = key(ip);
      const mine = byClient.get(k) ?? 0;
      if (inUse + n > max || mine + n > perClient) return false;
      inUse += n;
      byClient.set(k, mine + n);
      onChange?.(inUse);
      return true;
    },
    give(ip, n) {
      if (n <= 0) return;
      const k = key(ip);
      const mine = (byClient.get(k) ?? 0) - n;
      if (mine > 0) byClient.set(k, mine);
      else byClient.delete(k);
      inUse = Math.max(0, inUse - n);
      onChange?.(inUse);
    },
    get inUse() {
      return inUse;
    },
    max,
    full: (ip) => !room(max, inUse) || (ip !== undefined && !room(perClient, byClient.get(key(ip)) ?? 0)),
  };
}

/**
 * One worker's share of the node's budget (each worker is a heap of its own, with no spool):
 * the total divided by the workers, but never less than one message of the largest size, or a
 * message near limits.maxMessageSize could never be taken on a node with many workers (8
 * workers, 256 MiB and 10 MB: every 9.5 MB message got 452 forever). The node then holds at
 * most max(total, workers × maxMessageSize): preflight warns when that exceeds the total.
 * The per-client limit is not divided: a client's connections land on any worker, and a
 * divided limit would again fall below one message; a client holds at most that much per worker.
 */
export function workerShare(limits: { readonly maxBytesInFlight: number; readonly maxBytesInFlightPerClient: number; readonly maxMessageSize: number }, workers: number):
  { maxBytesInFlight: number; maxBytesInFlightPerClient: number } {
  return {
    maxBytesInFlight: Math.max(Math.floor(limits.maxBytesInFlight / workers), limits.maxMessageSize),
    maxBytesInFlightPerClient: limits.maxBytesInFlightPerClient,
  };
}
