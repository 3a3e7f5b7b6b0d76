/**
 * The Reputation facade the pipeline calls at each SMTP step (types.ts). It reads scores,
 * turns them into a tier, scales the base limits by the tier's multiplier and asks the store
 * for all buckets of the step at once (all or nothing). It never builds SMTP replies: it says
 * "limited by X, retry after N ms" and the pipeline answers 421 / 451 4.7.x.
 *
 * - Client tier: the worse of the IP and network tiers, each counting once it has minSamples
 *   (see combinedTier in scores.ts for why).
 * - Domain tier: only for an authenticated domain (aligned DKIM d= or aligned SPF-pass); the
 *   pipeline must never pass an unverified From, or spoofers would borrow its reputation.
 * - Allow list: limits bypassed and tier 'trusted'. Block list: always limited ('blocklist')
 *   and tier 'bad'.
 */
import type { Tier } from '../core/facts.ts';
import { baseLimits, type RateLimitsConfig, type ReputationConfig } from './config.ts';
import { domainSubject, ipSubject, netSubject, rcptSubject } from './keys.ts';
import { NO_LISTS, type Lists } from './lists.ts';
import { boundedMultiplier, combinedTier, deltasFor, tierOf } from './scores.ts';
import { LRUCache } from 'lru-cache';
import type { BucketRequest, Limited, Limiter, RateStore, Reputation, Reservation, ScoreState, Subject, TierInfo } from './types.ts';

/** Retry hints where no bucket gives one: a block-listed client, or a tier whose multiplier is 0. */
export const BLOCKED_RETRY_AFTER_MS = 60 * 60_000;
export const TIER_ZERO_RETRY_AFTER_MS = 15 * 60_000;

export interface ReputationObserver {
  /** A step was refused by this limiter (a metric label: closed set). */
  limited(limiter: Limiter): void;
  /** The tier a connection was classified in. */
  tier(tier: Tier): void;
}

export interface CreateReputationOptions {
  readonly store: RateStore;
  readonly config: { readonly reputation: ReputationConfig; readonly rateLimits: RateLimitsConfig };
  /** The current lists; a function so a SIGHUP reload can swap them without rebuilding the facade. */
  readonly lists?: Lists | (() => Lists);
  readonly observer?: ReputationObserver;
  /**
   * Scores read at connect and DATA are reused for this long (0 = always read), so a busy
   * sender's step costs one store round trip (the take) instead of two. A tier lags its score
   * by at most this much.
   */
  readonly scoreCacheMs?: number;
}

type Step = { ok: true; reservation: Reservation } | ({ ok: false } & Limited);

const EMPTY: Reservation = Object.freeze({ taken: Object.freeze([]) });

/** What every step reads: the store, the settings, the lists in force and the score cache. */
interface Ctx {
  readonly store: RateStore;
  readonly observer: ReputationObserver | undefined;
  readonly rep: ReputationConfig;
  readonly limits: ReturnType<typeof baseLimits>;
  lists(): Lists;
  scores(subjects: readonly Subject[], now: number): Promise<ScoreState[]>;
}

export function createReputation(opts: CreateReputationOptions): Reputation {
  const c: Ctx = {
    store: opts.store,
    observer: opts.observer,
    rep: opts.config.reputation,
    limits: baseLimits(opts.config.rateLimits),
    lists: () => (typeof opts.lists === 'function' ? opts.lists() : opts.lists ?? NO_LISTS),
    scores: cachedScores(opts.store, opts.scoreCacheMs ?? 0),
  };
  return {
    tier: (ip, now) => tierInfo(c, ip, now),
    connect: (ip, now) => connect(c, ip, now),
    mail: (ip, tier, now) => mail(c, ip, tier, now),
    rcpt: (ip, recipient, tier, now) => rcpt(c, ip, recipient, tier, now),
    data: (authDomain, now) => data(c, authDomain, now),
    async release(reservation, now) {
      if (reservation.taken.length > 0) await c.store.release(reservation, now);
    },
    learn: (event, now) => learn(c, event, now),
  };
}

/** Scores of the subjects, from a short-lived cache where fresh, else one store call for the rest. */
function cachedScores(store: RateStore, cacheMs: number): Ctx['scores'] {
  const cached = new LRUCache<string, { state: ScoreState; at: number }>({ max: 50_000 });
  return async (subjects, now) => {
    const key = (s: Subject): string => `${s.kind}:${s.id}`;
    const hit = (s: Subject): ScoreState | undefined => {
      const e = cacheMs > 0 ? cached.get(key(s)) : undefined;
      return e && now - e.at < cacheMs && now >= e.at ? e.state : undefined;
    };
    const missing = subjects.filter((s) => !hit(s));
    const fetched = missing.length > 0 ? await store.scores(missing, now) : [];
    fetched.forEach((state, i) => { if (cacheMs > 0) cached.set(key(missing[i]!), { state, at: now }); });
    return subjects.map((s) => hit(s) ?? fetched[missing.indexOf(s)]!);
  };
}

const net = (c: Ctx, ip: string): Subject => netSubject(ip, c.rep.networkBitsV4, c.rep.networkBitsV6);

function request(c: Ctx, limiter: Exclude<Limiter, 'blocklist'>, subject: Subject, m: number, cost = 1): BucketRequest {
  const base = c.limits[limiter];
  return { limiter, subject, ratePerSecond: base.ratePerSecond * m, burst: Math.max(1, base.burst * m), cost };
}

function limited(c: Ctx, limitedBy: Limiter, retryAfterMs: number, storeUnavailable?: true): { ok: false } & Limited {
  c.observer?.limited(limitedBy);
  return { ok: false, limitedBy, retryAfterMs, ...(storeUnavailable ? { storeUnavailable } : {}) };
}

/** The buckets of one step, scaled by the tier; a multiplier of 0 refuses without asking the store. */
async function take(c: Ctx, tier: Tier, build: (m: number) => BucketRequest[], now: number): Promise<Step> {
  const m = boundedMultiplier(c.rep.multipliers[tier]);
  const requests = build(m === 0 ? 1 : m);
  if (m === 0) return limited(c, requests[0]!.limiter, TIER_ZERO_RETRY_AFTER_MS);
  const res = await c.store.take(requests, now);
  if (res.allowed) return { ok: true, reservation: res.reservation };
  return limited(c, res.limitedBy, res.retryAfterMs, res.storeUnavailable);
}

/** Block wins over allow: a line in the block file is the more deliberate statement. */
function listed(c: Ctx, ip: string): 'block' | 'allow' | null {
  const l = c.lists();
  if (l.block.hasIp(ip)) return 'block';
  if (l.allow.hasIp(ip)) return 'allow';
  return null;
}

/** The client's tier from its IP and network scores and the lists; reads, never takes. */
async function tierInfo(c: Ctx, ip: string, now: number): Promise<TierInfo> {
  const ipS = ipSubject(ip);
  const [ipState, netState] = await c.scores([ipS, net(c, ipS.id)], now);
  const list = listed(c, ipS.id);
  const computed = combinedTier(ipState!, netState!, c.rep.thresholds, c.rep.minSamples);
  return { tier: list === 'allow' ? 'trusted' : list === 'block' ? 'bad' : computed, ip: ipState!, net: netState! };
}

async function connect(c: Ctx, ip: string, now: number): ReturnType<Reputation['connect']> {
  const ipS = ipSubject(ip);
  const netS = net(c, ipS.id);
  const tier = await tierInfo(c, ip, now);
  const list = listed(c, ipS.id);
  c.observer?.tier(tier.tier);
  if (list === 'block') return { tier, ...limited(c, 'blocklist', BLOCKED_RETRY_AFTER_MS) };
  if (list === 'allow') return { tier, ok: true, reservation: EMPTY };
  const step = await take(c, tier.tier, (m) => [request(c, 'ip-connections', ipS, m), request(c, 'net-connections', netS, m)], now);
  return { tier, ...step };
}

async function mail(c: Ctx, ip: string, tier: TierInfo, now: number): Promise<Step> {
  const ipS = ipSubject(ip);
  const list = listed(c, ipS.id);
  if (list === 'block') return limited(c, 'blocklist', BLOCKED_RETRY_AFTER_MS);
  if (list === 'allow') return { ok: true, reservation: EMPTY };
  const netS = net(c, ipS.id);
  return take(c, tier.tier, (m) => [request(c, 'ip-messages', ipS, m), request(c, 'net-messages', netS, m)], now);
}

async function rcpt(c: Ctx, ip: string, recipient: string, tier: TierInfo, now: number): Promise<Step> {
  const ipS = ipSubject(ip);
  const list = listed(c, ipS.id);
  if (list === 'block') return limited(c, 'blocklist', BLOCKED_RETRY_AFTER_MS);
  if (list === 'allow') return { ok: true, reservation: EMPTY };
  const netS = net(c, ipS.id);
  const rcptS = rcptSubject(recipient);
  return take(c, tier.tier, (m) => [
    request(c, 'ip-recipients', ipS, m), request(c, 'net-recipients', netS, m), request(c, 'rcpt-messages', rcptS, m),
  ], now);
}

async function data(c: Ctx, authDomain: string | null, now: number): ReturnType<Reputation['data']> {
  if (authDomain === null) return { domainTier: null, ok: true, reservation: EMPTY };
  const subject = domainSubject(authDomain);
  const l = c.lists();
  if (l.block.hasDomain(subject.id)) return { domainTier: 'bad', ...limited(c, 'blocklist', BLOCKED_RETRY_AFTER_MS) };
  if (l.allow.hasDomain(subject.id)) return { domainTier: 'trusted', ok: true, reservation: EMPTY };
  const [state] = await c.scores([subject], now);
  const domainTier = tierOf(state!, c.rep.thresholds, c.rep.minSamples);
  const step = await take(c, domainTier, (m) => [request(c, 'domain-messages', subject, m)], now);
  return { domainTier, ...step };
}

async function learn(c: Ctx, event: Parameters<Reputation['learn']>[0], now: number): Promise<void> {
  if (event.outcomes.length === 0) return;
  const d = { ip: 0, net: 0, domain: 0 };
  for (const o of event.outcomes) {
    const x = deltasFor(o.outcome, o.count);
    d.ip += x.ip;
    d.net += x.net;
    d.domain += x.domain;
  }
  const ipS = ipSubject(event.ip);
  const updates: Array<{ subject: Subject; delta: number }> = [
    { subject: ipS, delta: d.ip },
    { subject: net(c, ipS.id), delta: d.net },
  ];
  // Only an authenticated domain earns or spends (the contract of authDomain).
  if (event.authDomain !== null && d.domain !== 0) updates.push({ subject: domainSubject(event.authDomain), delta: d.domain });
  await c.store.learn(updates, now);
}
