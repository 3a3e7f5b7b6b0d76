/**
 * The contract between the pipeline and the reputation / rate-limit subsystem (issue 3).
 * The pipeline calls the Reputation facade at each SMTP step; the facade turns that into
 * bucket requests and score lookups on a RateStore (in-memory for one node, Redis shared by
 * many). Nothing here knows SMTP replies: the facade says "limited by X, retry after N ms",
 * the pipeline answers 421 / 451 4.7.x.
 */
import type { Tier } from '../core/facts.ts';

/** What a score or a bucket belongs to. `net` ids are CIDR text ("203.0.113.0/24", "2001:db8::/64"). */
export type SubjectKind = 'ip' | 'net' | 'domain' | 'rcpt';
export interface Subject {
  readonly kind: SubjectKind;
  /** Normalised: canonical IP / CIDR text, lower-case domain, lower-case address. */
  readonly id: string;
}

/** Closed set: a metric label and a log field. */
export const LIMITERS = [
  'ip-connections', 'net-connections',
  'ip-messages', 'net-messages', 'domain-messages',
  'ip-recipients', 'net-recipients', 'rcpt-messages',
  'blocklist',
  // not an SMTP step: DMARC failure reports per reported domain (src/reports/failure)
  'dmarc-failure-reports',
] as const;
export type Limiter = (typeof LIMITERS)[number];

export interface BucketRequest {
  readonly limiter: Limiter;
  readonly subject: Subject;
  /** Sustained rate after the tier multiplier, tokens per second (> 0). */
  readonly ratePerSecond: number;
  /** Tokens available at once after the tier multiplier (>= 1). */
  readonly burst: number;
  readonly cost: number;
}

/** What a take reserved, so it can be given back if the transaction dies before completing. */
export interface Reservation {
  readonly taken: readonly BucketRequest[];
}

export type TakeResult =
  | { readonly allowed: true; readonly reservation: Reservation }
  | {
    readonly allowed: false; readonly limitedBy: Limiter; readonly retryAfterMs: number;
    /** Set when the store could not answer and failMode is 'closed': reply 451 4.3.0 "try later", learn nothing. */
    readonly storeUnavailable?: true;
  };

export interface ScoreState {
  readonly subject: Subject;
  /** Decayed to `now`, within [-SCORE_BOUND, SCORE_BOUND]. */
  readonly score: number;
  /** Certain outcomes learnt (a score counts for the tier only from minSamples on). */
  readonly samples: number;
  readonly updatedAt: number;
}

/** Storage: atomic buckets and decaying scores. Two implementations, one behaviour. */
export interface RateStore {
  /** All-or-nothing over the buckets: either every bucket had the tokens and all were taken, or none is left taken. */
  take(requests: readonly BucketRequest[], now: number): Promise<TakeResult>;
  /** Gives back what a take reserved. */
  release(reservation: Reservation, now: number): Promise<void>;
  scores(subjects: readonly Subject[], now: number): Promise<ScoreState[]>;
  /** Decays, adds delta (bounded), counts a sample, refreshes the key's TTL. */
  learn(updates: ReadonlyArray<{ readonly subject: Subject; readonly delta: number }>, now: number): Promise<void>;
  /**
   * When was `key` first seen? Records `now` the first time; returns that first time (ms),
   * remembered for ttlMs. Shared by every node on Redis, so behind a balancer a retry that
   * lands on another node continues the same first-seen window.
   */
  firstSeen(key: string, now: number, ttlMs: number): Promise<number>;
  /** Operator tools. */
  inspect(subject: Subject, now: number): Promise<{ score: ScoreState; buckets: Array<{ limiter: Limiter; tokens: number; burst?: number }> }>;
  reset(subject: Subject): Promise<number>;
  /** For /readyz. */
  health(): { ok: true } | { ok: false; error: string };
  close(): Promise<void>;
}

/** Outcomes the pipeline reports; only certain ones teach (a tempfail teaches nothing). */
export type Outcome =
  | 'delivered-aligned' // delivered, DMARC pass (the authenticated domain earns too)
  | 'delivered' // delivered without DMARC pass: IP/network neutral-to-slightly-good
  | 'auth-failed' // DMARC fail / SPF fail that a rule acted on
  | 'policy-rejected'
  | 'recipient-refused' // the backend refused a recipient (directory harvesting)
  | 'protocol-error';

export interface TierInfo {
  /** The tier the policy sees (`tier` match key) and the limits scale with. */
  readonly tier: Tier;
  readonly ip: ScoreState;
  readonly net: ScoreState;
}

export type Limited = {
  readonly limitedBy: Limiter; readonly retryAfterMs: number;
  /** The shared store is down and failMode is 'closed': not the client's fault (451 4.3.0), learn nothing. */
  readonly storeUnavailable?: true;
};

/** Metrics seam of a store (counted by the observability layer; op is a closed set: take, release, scores, learn, inspect, reset). */
export interface StoreObserver {
  storeError(op: string): void;
  storeLatency(op: string, seconds: number): void;
}

/**
 * The facade the pipeline uses. `authDomain` is ONLY an authenticated domain (aligned DKIM d=
 * or SPF-pass domain that DMARC-aligns) — never an unauthenticated From, or spoofers would
 * borrow a good name.
 */
export interface Reputation {
  /** At connect: tier of the client, and the connection buckets (421 when limited). */
  connect(ip: string, now: number): Promise<{ tier: TierInfo } & ({ ok: true; reservation: Reservation } | ({ ok: false } & Limited))>;
  /** At MAIL: per-IP and per-network message buckets. */
  mail(ip: string, tier: TierInfo, now: number): Promise<{ ok: true; reservation: Reservation } | ({ ok: false } & Limited)>;
  /** At RCPT: per-IP/network recipient buckets and the per-recipient message bucket. */
  rcpt(ip: string, recipient: string, tier: TierInfo, now: number): Promise<{ ok: true; reservation: Reservation } | ({ ok: false } & Limited)>;
  /** After DATA authentication: the domain's tier and its message bucket. */
  data(authDomain: string | null, now: number): Promise<{ domainTier: Tier | null } & ({ ok: true; reservation: Reservation } | ({ ok: false } & Limited))>;
  release(reservation: Reservation, now: number): Promise<void>;
  /**
   * Reads the client's tier without taking anything (a client named by XCLIENT within a
   * connection: its connection was already counted).
   */
  tier(ip: string, now: number): Promise<TierInfo>;
  /**
   * Once per transaction, after its end: what the sender did (its final outcome, recipients
   * the backend refused, relaying attempts), as one store update. Never our own refusals.
   */
  learn(event: { ip: string; authDomain: string | null; outcomes: ReadonlyArray<{ readonly outcome: Outcome; readonly count?: number }> }, now: number): Promise<void>;
}
