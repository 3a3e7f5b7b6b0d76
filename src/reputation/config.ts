/**
 * Configuration fragments for reputation and rate limits, merged by the lead into
 * config/schema.ts: `redis` (replaces the existing one, keeps `url`), `reputation`,
 * `rateLimits`, `lists`. Strict objects with defaults and a doc string per key.
 *
 * Default limits are for an inbound MX: generous, so ordinary mail (including a busy
 * mailing list or a large provider's single address) never meets them; they stop floods.
 * Rates are for a neutral sender; the tier multiplier scales rate and burst.
 */
import { z } from 'zod';
import { duration, flag, hostPort, redisUrlProblem, wholeDuration } from '../config/values.ts';
import { MULTIPLIER_BOUND } from './scores.ts';
import type { Limiter } from './types.ts';

export const redisConfigSchema = z.strictObject({
  url: z.string().regex(/^(redis|rediss|redis\+sentinel):\/\//, 'expected redis://, rediss:// or redis+sentinel://')
    .superRefine((url, ctx) => {
      const problem = redisUrlProblem(url);
      if (problem !== null) ctx.addIssue({ code: 'custom', input: url, message: problem });
    }).optional()
    .describe('redis:// URL (rediss:// for TLS, redis+sentinel://host:26379,host2:26379/mastername for Sentinel); absent = in-memory store (one node)'),
  keyPrefix: z.string().regex(/^[^{}\s]*$/, 'no braces or spaces (they would change the cluster hash tag)').default('postern:')
    .describe('Prefix of every Redis key (postern:rep:{ip:…}, postern:rl:{ip:…}:ip-messages)'),
  cluster: flag().default(false).describe('Redis Cluster: url and nodes are seed nodes'),
  nodes: z.array(hostPort).default([]).describe('More seed nodes (host:port) for a cluster; several nodes imply cluster'),
  sentinel: z.strictObject({
    masterName: z.string().optional().describe('Sentinel master name (instead of a redis+sentinel:// URL)'),
    nodes: z.array(hostPort).default([]).describe('Sentinels, host:port'),
  }).prefault({}),
  commandTimeoutMs: wholeDuration('ms', 10).default(500).describe('A Redis command slower than this fails and is answered locally (failMode)'),
  connectTimeoutMs: wholeDuration('ms', 10).default(2_000).describe('Connect timeout per attempt; reconnects continue in the background'),
  failMode: z.enum(['open', 'closed']).default('open')
    .describe('Redis down or slow: open = keep accepting with per-node limits from memory; closed = 451 4.3.0 until it is back'),
  failCooldownMs: wholeDuration('ms', 0).default(1_000)
    .describe('After a Redis error on a live connection, answer locally for this long before trying Redis again'),
}).prefault({});

const tierMultiplier = (def: number, doc: string) => z.number()
  .refine((m) => m === 0 || (m >= 1 / MULTIPLIER_BOUND && m <= MULTIPLIER_BOUND), `0 (always limited) or within [1/${MULTIPLIER_BOUND}, ${MULTIPLIER_BOUND}]`)
  .default(def).describe(doc);

export const reputationConfigSchema = z.strictObject({
  halfLifeHours: duration('h', z.number().positive()).default(72).describe('Scores halve towards 0 after this long without news'),
  minSamples: z.number().int().min(0).default(5).describe('Certain outcomes needed before a score moves the tier (below: neutral)'),
  networkBitsV4: z.number().int().min(8).max(32).default(24).describe('IPv4 prefix length of the network score and buckets'),
  networkBitsV6: z.number().int().min(16).max(128).default(64).describe('IPv6 prefix length of the network score and buckets'),
  keyTtlDays: duration('d', z.number().positive()).default(30).describe('A score not updated for this long is forgotten (key TTL)'),
  scoreCacheSeconds: duration('s', z.number().min(0)).default(30).describe('Scores read at connect and DATA are reused this long, so a busy sender costs one store round trip per step (0 = always read)'),
  memoryMaxKeys: z.number().int().min(100).default(100_000).describe('Buckets and scores each kept in memory (memory store and Redis fail-open fallback), least recently used dropped'),
  thresholds: z.strictObject({
    trusted: z.number().default(50).describe('Score at or above which a sender is trusted'),
    good: z.number().default(10).describe('Score at or above which a sender is good'),
    suspect: z.number().default(-10).describe('Score at or below which a sender is suspect'),
    bad: z.number().default(-40).describe('Score at or below which a sender is bad'),
  }).refine((t) => t.bad < t.suspect && t.suspect < t.good && t.good < t.trusted, 'expected bad < suspect < good < trusted').prefault({}),
  multipliers: z.strictObject({
    trusted: tierMultiplier(4, 'Rate and burst multiplier for trusted senders'),
    good: tierMultiplier(2, 'Rate and burst multiplier for good senders'),
    neutral: tierMultiplier(1, 'Rate and burst multiplier for unknown/neutral senders'),
    suspect: tierMultiplier(0.5, 'Rate and burst multiplier for suspect senders'),
    bad: tierMultiplier(0.25, 'Rate and burst multiplier for bad senders (0 = always 4xx)'),
  }).prefault({}),
}).prefault({});

const RATE_UNITS: Readonly<Record<string, number>> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3_600, hour: 3_600, d: 86_400, day: 86_400 };
const rateText = /^(\d+(?:\.\d+)?)\s*\/\s*(s|sec|second|m|min|minute|h|hour|d|day)$/;

export type Rate = string | { readonly perSecond: number };

export const rateSchema = z.union([
  z.string().regex(rateText, 'expected N/unit (s, min, hour, day), e.g. "60/min"').refine((r) => toPerSecond(r) > 0, 'rate must be > 0'),
  z.strictObject({ perSecond: z.number().positive() }),
]);

/** "60/min" → 1; { perSecond: 2 } → 2. */
export function toPerSecond(rate: Rate): number {
  if (typeof rate !== 'string') return rate.perSecond;
  const m = rateText.exec(rate.trim());
  if (!m) throw new Error(`invalid rate "${rate}"`);
  return Number(m[1]) / RATE_UNITS[m[2]!]!;
}

const bucket = (rate: string, burst: number, doc: string) => z.strictObject({
  rate: rateSchema.default(rate).describe(`${doc}: sustained rate for a neutral sender, N/unit or {perSecond}`),
  burst: z.number().min(1).default(burst).describe(`${doc}: tokens available at once`),
}).prefault({});

export const rateLimitsConfigSchema = z.strictObject({
  ipConnections: bucket('600/min', 300, 'Connections per client IP'),
  netConnections: bucket('3000/min', 1500, 'Connections per client network'),
  ipMessages: bucket('1200/min', 600, 'Messages (MAIL) per client IP'),
  netMessages: bucket('6000/min', 3000, 'Messages (MAIL) per client network'),
  domainMessages: bucket('6000/min', 3000, 'Messages per authenticated sender domain'),
  ipRecipients: bucket('6000/min', 3000, 'Recipients (RCPT) per client IP'),
  netRecipients: bucket('20000/min', 10000, 'Recipients (RCPT) per client network'),
  rcptMessages: bucket('600/min', 1200, 'Messages per recipient address (mail bombing)'),
}).prefault({});

export const listsConfigSchema = z.strictObject({
  allow: z.string().optional().describe('File of IPs, CIDRs and domains that bypass rate limits (reloaded on SIGHUP)'),
  block: z.string().optional().describe('File of IPs, CIDRs and domains that are always limited (4xx; reloaded on SIGHUP)'),
}).prefault({});

/** The fragment to merge into configSchema's top-level object. */
export const reputationConfigShape = {
  redis: redisConfigSchema,
  reputation: reputationConfigSchema,
  rateLimits: rateLimitsConfigSchema,
  lists: listsConfigSchema,
};

export type RedisConfig = z.output<typeof redisConfigSchema>;
export type ReputationConfig = z.output<typeof reputationConfigSchema>;
export type RateLimitsConfig = z.output<typeof rateLimitsConfigSchema>;
export type ListsConfig = z.output<typeof listsConfigSchema>;

/** Config key → limiter name (the closed metric label set). */
export const RATE_LIMIT_KEYS: Readonly<Record<keyof RateLimitsConfig, Exclude<Limiter, 'blocklist'>>> = {
  ipConnections: 'ip-connections', netConnections: 'net-connections',
  ipMessages: 'ip-messages', netMessages: 'net-messages', domainMessages: 'domain-messages',
  ipRecipients: 'ip-recipients', netRecipients: 'net-recipients', rcptMessages: 'rcpt-messages',
};

export interface BaseLimit { readonly ratePerSecond: number; readonly burst: number }

export function baseLimits(cfg: RateLimitsConfig): Readonly<Record<Exclude<Limiter, 'blocklist'>, BaseLimit>> {
  const out = {} as Record<Exclude<Limiter, 'blocklist'>, BaseLimit>;
  for (const [key, limiter] of Object.entries(RATE_LIMIT_KEYS) as Array<[keyof RateLimitsConfig, Exclude<Limiter, 'blocklist'>]>) {
    out[limiter] = { ratePerSecond: toPerSecond(cfg[key].rate), burst: cfg[key].burst };
  }
  return out;
}
