/**
 * The policy file grammar as zod schemas. Strict objects everywhere: an unknown key is an
 * error (a typo like `dmarc_polciy` must not silently widen a rule). Semantic checks that
 * need more than one field, or files (CIDRs, patterns, list files, reply classes), are made
 * in compile.ts, which locates its errors the same way.
 */
import { z } from 'zod';
import { AUTH_RESULTS, DMARC_POLICIES, TIERS } from '../core/facts.ts';
import { ACTIONS } from '../core/verdict.ts';
import type { MatchKey } from './types.ts';

export const MODES = ['enforce', 'monitor'] as const;
export const DMARC_POLICY_VALUES = [...DMARC_POLICIES, 'absent'] as const;

// Rule names are metric labels and header values: a small, safe alphabet.
export const RULE_NAME = /^[a-z0-9._-]{1,64}$/;
// RFC 3463 §2: class.subject.detail, subject and detail of 1 to 3 digits.
const ENHANCED = /^[45]\.\d{1,3}\.\d{1,3}$/;
// RFC 5322 §3.6.8: field name is printable ASCII except colon.
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]{1,76}$/;
// One line of printable ASCII; folding is the relay's business.
const FIELD_VALUE = /^[\x20-\x7e]{0,900}$/;
const MAILBOX = /^[\x21-\x3f\x41-\x7e]{1,64}@[A-Za-z0-9.-]{1,253}$/;
export const DURATION = /^(?:\d+[smhd])+$/;
/** A count compared: `0`, `">1"`, `">= 2"`, `"<1"`, `"=1"` (a bare number is `=`). */
export const COUNT_COMPARISON = /^\s*(<=|>=|<|>|=)?\s*(\d{1,6})\s*$/;

function oneOf(values: readonly string[]): { error: string } {
  return { error: `expected one of ${values.join(', ')}` };
}

/** A value or a list of values (any of them). A scalar is read as a one-item list. */
function oneOrMany<T extends z.ZodType>(item: T) {
  return z.preprocess((v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : [v]), z.array(item).min(1, 'list must not be empty')).optional();
}

/** A count (`from_count: 0`) or a comparison with one (`from_count: ">1"`). */
const COUNT_ERROR = 'expected a count like 0 or a comparison like ">1", ">=2", "<1"';
const countTest = z.union([
  z.int({ error: COUNT_ERROR }).min(0, COUNT_ERROR),
  z.string({ error: COUNT_ERROR }).regex(COUNT_COMPARISON, COUNT_ERROR),
], { error: COUNT_ERROR });

const pattern = z.string({ error: 'expected a string' }).min(1, 'pattern must not be empty');
const authResult = z.enum(AUTH_RESULTS, oneOf(AUTH_RESULTS));

export const ARC_CHAIN_STATES = ['pass', 'fail', 'none'] as const;
/** ARC keys (RFC 8617): the chain's state, its newest sealer, and the DMARC result that sealer recorded. */
const arcMatchShape = {
  arc_chain: oneOrMany(z.enum(ARC_CHAIN_STATES, oneOf(ARC_CHAIN_STATES))),
  arc_sealer: oneOrMany(pattern),
  arc_dmarc: oneOrMany(authResult),
};

const matchShape = {
  ip: oneOrMany(pattern),
  helo: oneOrMany(pattern),
  ptr: oneOrMany(pattern),
  sender_domain: oneOrMany(pattern),
  from_domain: oneOrMany(pattern),
  recipient: oneOrMany(pattern),
  spf: oneOrMany(authResult),
  dkim: oneOrMany(authResult),
  dkim_aligned: z.boolean({ error: 'expected true or false' }).optional(),
  dkim_domain: oneOrMany(pattern),
  arc: oneOrMany(authResult),
  dmarc: oneOrMany(authResult),
  dmarc_policy: oneOrMany(z.enum(DMARC_POLICY_VALUES, oneOf(DMARC_POLICY_VALUES))),
  tier: oneOrMany(z.enum(TIERS, oneOf(TIERS))),
  auth_temperror: z.boolean({ error: 'expected true or false' }).optional(),
  first_seen_within: z.string({ error: 'expected a duration like 30m, 4h or 1h30m' })
    .regex(DURATION, 'expected a duration like 30m, 4h or 1h30m').optional(),
  multiple_from: z.boolean({ error: 'expected true or false' }).optional(),
  from_count: oneOrMany(countTest),
  ...arcMatchShape,
} satisfies Record<MatchKey, z.ZodType>;

const negatedMatchSchema = z.strictObject(matchShape);
export const matchSchema = z.strictObject({ ...matchShape, not: negatedMatchSchema.optional() });

const replySchema = z.strictObject({
  code: z.int({ error: 'expected an SMTP code like 550 or 451' }).min(400, 'expected a 4xx or 5xx code').max(599, 'expected a 4xx or 5xx code').optional(),
  enhanced: z.string({ error: 'expected an enhanced status code like 5.7.1' }).regex(ENHANCED, 'expected an enhanced status code like 5.7.1 (RFC 3463)').optional(),
  text: z.string({ error: 'expected a string' }).min(1, 'reply text must not be empty').optional(),
});

const headerSchema = z.strictObject({
  name: z.string({ error: 'expected a header field name' }).regex(FIELD_NAME, 'not a valid header field name (RFC 5322 §3.6.8)'),
  value: z.string({ error: 'expected a string' }).regex(FIELD_VALUE, 'header value must be one line of printable ASCII, at most 900 characters'),
});

export const ruleSchema = z.strictObject({
  name: z.string({ error: 'expected a rule name' }).regex(RULE_NAME, 'rule name must be 1-64 characters of a-z 0-9 . _ -'),
  description: z.string({ error: 'expected a string' }).optional(),
  // `match:` left empty in YAML is null: a catch-all, like an absent match.
  match: matchSchema.nullish(),
  action: z.enum(ACTIONS, oneOf(ACTIONS)),
  reply: replySchema.optional(),
  headers: z.array(headerSchema, { error: 'expected a list of { name, value }' }).optional(),
  mailbox: z.string({ error: 'expected an address' }).regex(MAILBOX, 'expected an address like quarantine@example.com').optional(),
  mode: z.enum(MODES, oneOf(MODES)).optional(),
}, { error: 'a rule is a mapping with name, match and action' });

/** File level: rules are validated one by one (ruleSchema), so one bad rule does not hide others. */
export const fileSchema = z.strictObject({
  mode: z.enum(MODES, oneOf(MODES)).optional(),
  rules: z.array(z.unknown(), { error: 'expected a list of rules' }),
}, { error: 'a policy file is a mapping with `rules:` and an optional `mode:`' });

export type RuleSpec = z.output<typeof ruleSchema>;
export type MatchSpec = z.output<typeof negatedMatchSchema>;

/** The test a count value stands for: 0 → n === 0, ">1" → n > 1. */
export function countPredicate(value: number | string): (n: number) => boolean {
  if (typeof value === 'number') return (n) => n === value;
  const m = COUNT_COMPARISON.exec(value);
  const limit = Number(m?.[2] ?? Number.NaN);
  switch (m?.[1]) {
    case '<': return (n) => n < limit;
    case '<=': return (n) => n <= limit;
    case '>': return (n) => n > limit;
    case '>=': return (n) => n >= limit;
    default: return (n) => n === limit;
  }
}

/** Seconds in a duration like 30m, 4h, 1h30m or 2d. */
export function parseDuration(text: string): number {
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
  let seconds = 0;
  for (const m of text.matchAll(/(\d+)([smhd])/g)) seconds += Number(m[1]) * (unit[m[2] ?? 's'] ?? 1);
  return seconds;
}
