/**
 * The global budget of message bytes held in memory (limits.maxBytesInFlight): Postern has no
 * spool, so every message being received or relayed is in memory. Past the budget, new
 * messages are deferred with 452 4.3.1 ("mail system full", RFC 3463) until bytes drain, so a
 * flood of large uploads cannot exhaust the heap: a message whose bytes cannot all be admitted
 * stops being kept (the rest of its upload is read and dropped) and is answered 452 at its end.
 * Bytes come back when the transaction ends (src/pipeline/end.ts), delivered or not.
 */
export interface ByteBudget {
  /** Admits n more bytes if they fit under the budget. */
  tryTake(n: number): boolean;
  give(n: number): void;
  /** Bytes held now, and the budget. */
  readonly inUse: number;
  readonly max: number;
  /** True when no new message should start: what is left would not hold a small one. */
  full(): boolean;
}

export function createByteBudget(max: number, onChange?: (inUse: number) => void): ByteBudget {
  let inUse = 0;
  return {
    tryTake(n) {
      if (inUse + n > max) return false;
      inUse += n;
      onChange?.(inUse);
      return true;
    },
    give(n) {
      inUse = Math.max(0, inUse - n);
      onChange?.(inUse);
    },
    get inUse() {
      return inUse;
    },
    max,
    full: () => max - inUse < Math.min(65_536, max / 16),
  };
}
