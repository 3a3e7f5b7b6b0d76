/**
 * The compiled form of the policy rules. Built once by load.ts (all-or-nothing), deep-frozen,
 * and read per message by decide.ts. Matchers are precompiled closures: CIDRs parsed once,
 * list files read once, domain sets as Set lookups.
 */
import type { Facts } from '../core/facts.ts';
import type { Action, Reason, Verdict } from '../core/verdict.ts';
import type { ClientIp } from './ip.ts';

/** The closed set of match keys (snake_case, as written in YAML). */
export const MATCH_KEYS = [
  'ip', 'helo', 'ptr', 'sender_domain', 'from_domain', 'recipient',
  'spf', 'dkim', 'dkim_aligned', 'dkim_domain', 'arc', 'dmarc', 'dmarc_policy',
  'tier', 'auth_temperror', 'first_seen_within', 'multiple_from', 'from_count',
  // ARC (RFC 8617): trusted sealers and forwarders (issue 9)
  'arc_chain', 'arc_sealer', 'arc_dmarc',
] as const;
export type MatchKey = (typeof MATCH_KEYS)[number];

/**
 * When a fact is known. `mail`: at MAIL FROM (client, HELO, envelope sender, SPF, tier).
 * `data`: only after the message was read (recipients, From, DKIM, ARC, DMARC, first-seen).
 */
export type Stage = 'mail' | 'data';

/** The keys whose facts exist at MAIL FROM; every other key waits for DATA. */
export const MAIL_STAGE_KEYS: ReadonlySet<MatchKey> = new Set<MatchKey>(['ip', 'helo', 'ptr', 'sender_domain', 'spf', 'tier']);

export type Mode = 'enforce' | 'monitor';

/** What a condition sees: the facts and values derived from them once per decide() call. */
export interface MatchInput {
  readonly facts: Facts;
  /** The client IP parsed (IPv4-mapped IPv6 unwrapped), or null when it does not parse. */
  clientIp(): ClientIp | null;
}

export interface Condition {
  readonly key: MatchKey;
  readonly stage: Stage;
  readonly test: (input: MatchInput) => boolean;
}

/** All conditions must hold (AND), and the `not:` sub-match must not. */
export interface CompiledMatch {
  readonly conditions: readonly Condition[];
  readonly not: CompiledMatch | null;
  /** 'mail' when every condition (including under `not:`) is decidable at MAIL FROM. */
  readonly stage: Stage;
}

export interface CompiledRule {
  readonly name: string;
  readonly description: string;
  /** Policy file and line of the rule, for logs and check-config output. */
  readonly file: string;
  readonly line: number;
  readonly mode: Mode;
  readonly action: Action;
  readonly reason: Reason;
  /** Match keys used (including under `not:`), in the order written. */
  readonly keys: readonly MatchKey[];
  readonly match: CompiledMatch;
  /** The verdict when this rule matches; reply text templates are rendered from the facts. */
  readonly verdict: (facts: Facts) => Verdict;
  /** What the transaction gets when this rule is in monitor mode and matches. */
  readonly monitorAccept: Verdict;
}

export interface PolicyFileInfo {
  readonly path: string;
  readonly mode: Mode;
  readonly rules: number;
}

export interface RuleSet {
  /** The policy folder list-file references were resolved against. */
  readonly dir: string;
  /** Files in load order (lexical by file name). */
  readonly files: readonly PolicyFileInfo[];
  /** Rules of all files, concatenated in load order: the first match wins. */
  readonly rules: readonly CompiledRule[];
}
