/**
 * Reputation arithmetic, pure (`now` is an argument): decaying scores, tiers, tier
 * multipliers and what each outcome teaches. scripts/learn.lua repeats decay + bound.
 *
 * Model (after rspamd's reputation/ratelimit plugins, lua_verdict `can_learn`):
 * - a score decays exponentially towards 0 with a configurable half-life, so old behaviour
 *   fades and a reformed sender recovers;
 * - it stays within ±SCORE_BOUND, so no history is worth more than a bounded number of recent
 *   messages, good or bad;
 * - it counts for a tier only after `minSamples` certain outcomes (rspamd `lower_bound`);
 * - only certain outcomes teach: Outcome has no tempfail member on purpose;
 * - only what the sender did teaches, never what we did to it: a rate-limit refusal is ours,
 *   and learning from it would make a throttled sender suspect, tighten its limits and refuse
 *   it more (a feedback loop).
 */
import type { Tier } from '../core/facts.ts';
import type { Outcome, ScoreState, Subject } from './types.ts';

export const SCORE_BOUND = 100;

/** Multipliers are kept within [1/MULTIPLIER_BOUND, MULTIPLIER_BOUND], or exactly 0 (always limited). */
export const MULTIPLIER_BOUND = 8;

export interface ScoreParams {
  readonly halfLifeMs: number;
  /** Score keys expire after this long without a learnt outcome. */
  readonly ttlMs: number;
}

/** Lower edges, score >= trusted → trusted, >= good → good; upper edges, <= bad → bad, <= suspect → suspect. */
export interface TierThresholds {
  readonly trusted: number;
  readonly good: number;
  readonly suspect: number;
  readonly bad: number;
}

export type TierMultipliers = Readonly<Record<Tier, number>>;

export function clampScore(score: number): number {
  return Math.min(SCORE_BOUND, Math.max(-SCORE_BOUND, score));
}

/** score × 2^(−Δt / half-life); a clock that went backwards decays nothing. */
export function decayed(score: number, updatedAt: number, now: number, halfLifeMs: number): number {
  const dt = now - updatedAt;
  if (dt <= 0 || score === 0) return score;
  return score * Math.pow(0.5, dt / halfLifeMs);
}

export function emptyScore(subject: Subject): ScoreState {
  return { subject, score: 0, samples: 0, updatedAt: 0 };
}

/** The state as read at `now`: the stored score decayed (stored state is never rewritten by a read). */
export function readScore(subject: Subject, stored: { s: number; n: number; t: number } | null, now: number, halfLifeMs: number): ScoreState {
  if (stored === null) return emptyScore(subject);
  return { subject, score: clampScore(decayed(stored.s, stored.t, now, halfLifeMs)), samples: stored.n, updatedAt: stored.t };
}

/** One learnt outcome: decay to now, add the bounded delta, count the sample. */
export function applyDelta(stored: { s: number; n: number; t: number } | null, delta: number, now: number, halfLifeMs: number): { s: number; n: number; t: number } {
  const prev = stored ?? { s: 0, n: 0, t: now };
  const s = clampScore(decayed(prev.s, prev.t, now, halfLifeMs) + delta);
  return { s, n: prev.n + 1, t: Math.max(now, prev.t) };
}

export function tierOf(state: ScoreState, thresholds: TierThresholds, minSamples: number): Tier {
  if (state.samples < minSamples) return 'neutral';
  if (state.score >= thresholds.trusted) return 'trusted';
  if (state.score >= thresholds.good) return 'good';
  if (state.score <= thresholds.bad) return 'bad';
  if (state.score <= thresholds.suspect) return 'suspect';
  return 'neutral';
}

const TIER_RANK: Readonly<Record<Tier, number>> = { trusted: 0, good: 1, neutral: 2, suspect: 3, bad: 4 };

export function worseTier(a: Tier, b: Tier): Tier {
  return TIER_RANK[a] >= TIER_RANK[b] ? a : b;
}

/**
 * The client's tier from its IP and its network. A score counts once it has minSamples; the
 * worse tier of those that count wins, and with none counting the client is neutral.
 * Why the worse: a spammer rotating through a /24 ("snowshoe") cannot escape a bad network
 * with a fresh address, and a good address does not launder its network. The network's score
 * includes the address's own history, so a network only turns bad when its other addresses
 * outweigh the good one. A score below minSamples says nothing, so it neither lifts nor
 * drags: a fresh address in a good provider network is good.
 */
export function combinedTier(ip: ScoreState, net: ScoreState, thresholds: TierThresholds, minSamples: number): Tier {
  const counting = [ip, net].filter((s) => s.samples >= minSamples).map((s) => tierOf(s, thresholds, minSamples));
  return counting.reduce<Tier | null>((worst, t) => (worst === null ? t : worseTier(worst, t)), null) ?? 'neutral';
}

/** Multipliers outside the bounds are clamped (config validation refuses them; this is the backstop). */
export function boundedMultiplier(m: number): number {
  if (!(m > 0)) return 0;
  return Math.min(MULTIPLIER_BOUND, Math.max(1 / MULTIPLIER_BOUND, m));
}

export interface Deltas {
  readonly ip: number;
  readonly net: number;
  /** Applied only to an authenticated domain (the facade is never given any other). */
  readonly domain: number;
}

/**
 * What each certain outcome teaches. Negative outcomes lower the client's IP and network; the
 * domain moves only where the domain itself is to blame and authenticated: an auth failure
 * means the domain did NOT authenticate, so it must never cost the (possibly spoofed) domain.
 */
export const OUTCOME_DELTAS: Readonly<Record<Outcome, Deltas>> = {
  'delivered-aligned': { ip: 1, net: 0.5, domain: 1 },
  'delivered': { ip: 0.5, net: 0.25, domain: 0 },
  'auth-failed': { ip: -3, net: -1.5, domain: 0 },
  'policy-rejected': { ip: -3, net: -1.5, domain: -3 },
  'recipient-refused': { ip: -1, net: -0.5, domain: -0.5 },
  'protocol-error': { ip: -2, net: -1, domain: 0 },
};

/** A count scales the delta (ten refused recipients teach ten times as much), capped so one event stays bounded. */
export const MAX_OUTCOME_COUNT = 20;

export function deltasFor(outcome: Outcome, count = 1): Deltas {
  const d = OUTCOME_DELTAS[outcome];
  const n = Math.min(MAX_OUTCOME_COUNT, Math.max(1, Math.floor(count)));
  return { ip: d.ip * n, net: d.net * n, domain: d.domain * n };
}
