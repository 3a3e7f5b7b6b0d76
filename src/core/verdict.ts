import type { PermReply, TempReply } from './reply.ts';

export const ACTIONS = ['accept', 'tag', 'quarantine', 'tempfail', 'reject'] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * Why a transaction ended as it did. A closed set: it is a metric label and a log field,
 * never a domain or an address.
 */
export const REASONS = [
  'rule', 'dmarc-policy', 'spf-fail', 'dkim-required', 'auth-temperror', 'rate-limited',
  'relay-denied', 'routing-syntax', 'bad-address', 'too-many-recipients', 'too-many-connections',
  'oversize', 'bad-line-endings', 'backend-unavailable', 'backend-rejected', 'internal-error',
  'shutting-down', 'multiple-from', 'default',
] as const;
export type Reason = (typeof REASONS)[number];

export interface HeaderField { readonly name: string; readonly value: string }

interface Base {
  /** Name of the rule that decided, or '' when no rule matched. */
  readonly rule: string;
  readonly reason: Reason;
  readonly detail?: string;
}
export type Verdict =
  | (Base & { readonly action: 'accept' })
  | (Base & { readonly action: 'tag'; readonly headers: readonly HeaderField[] })
  | (Base & { readonly action: 'quarantine'; readonly headers: readonly HeaderField[]; readonly mailbox?: string })
  | (Base & { readonly action: 'tempfail'; readonly reply: TempReply })
  | (Base & { readonly action: 'reject'; readonly reply: PermReply });

/**
 * The outcome of the policy. `enforced` is what happens; `wouldHave` is set when a rule in
 * monitor mode matched: what enforcing it would have done (logged and counted, not applied).
 */
export interface Decision {
  readonly enforced: Verdict;
  readonly wouldHave?: Verdict;
}

export const ACCEPT_DEFAULT: Verdict = { action: 'accept', rule: '', reason: 'default' };
