/**
 * GCRA (generic cell rate algorithm, ITU-T I.371; the "virtual scheduling" form) — the pure
 * arithmetic of one bucket. No clock reads: `now` (ms) is an argument. The memory store uses
 * these functions directly and scripts/take.lua + release.lua repeat them operation for
 * operation, so both stores compute the same doubles.
 *
 * State is one number, the theoretical arrival time (TAT): when the bucket would be full
 * again. Absent (or in the past) = full. With interval T = 1000 / rate and tolerance
 * τ = T × burst, a request of `cost` fits when max(TAT, now) + T × cost − now ≤ τ.
 *
 * Why GCRA and not rate-limiter-flexible: that library keys one limiter per call, has no
 * all-or-nothing take over several buckets with different rates, and its "reward" cannot be
 * capped at the burst per bucket. A 20-line script does exactly what we need, and the TAT
 * doubles as the key's TTL (the key expires the moment it would mean "full" anyway).
 * A useful property for tiers: scaling rate and burst by the same multiplier keeps τ in ms
 * unchanged, so a tier change mid-window neither forgives nor invents debt.
 */

export interface GcraParams {
  /** Tokens per second (> 0). */
  readonly ratePerSecond: number;
  /** Tokens available at once (>= 1). */
  readonly burst: number;
  readonly cost: number;
}

export type GcraTake =
  | { readonly allowed: true; readonly tat: number; /** When the key may expire: ms from now. */ readonly ttlMs: number }
  | { readonly allowed: false; readonly retryAfterMs: number };

export function intervalMs(p: GcraParams): number {
  return 1000 / p.ratePerSecond;
}

/** `tat` null = no state (a full bucket). */
export function gcraTake(tat: number | null, p: GcraParams, now: number): GcraTake {
  const interval = 1000 / p.ratePerSecond;
  const increment = interval * p.cost;
  const tolerance = interval * p.burst;
  const base = tat === null || tat < now ? now : tat;
  const newTat = base + increment;
  const excess = newTat - now - tolerance;
  if (excess > 0) return { allowed: false, retryAfterMs: Math.ceil(excess) };
  return { allowed: true, tat: newTat, ttlMs: Math.max(1, Math.ceil(newTat - now)) };
}

/** Gives `cost` tokens back, never beyond a full bucket. null = the bucket is full again (delete the key). */
export function gcraRelease(tat: number | null, p: GcraParams, now: number): { tat: number; ttlMs: number } | null {
  if (tat === null) return null;
  const newTat = tat - (1000 / p.ratePerSecond) * p.cost;
  if (newTat <= now) return null;
  return { tat: newTat, ttlMs: Math.max(1, Math.ceil(newTat - now)) };
}

/** Tokens left at `now` (for inspection): burst − backlog / interval, never below 0. */
export function gcraTokens(tat: number | null, interval: number, burst: number, now: number): number {
  if (tat === null || tat <= now) return burst;
  return Math.max(0, burst - (tat - now) / interval);
}
