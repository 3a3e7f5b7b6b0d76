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
  'oversize', 'bad-line-endings', 'bad-header', 'backend-unavailable', 'backend-rejected', 'internal-error',
  'shutting-down', 'client-gone', 'timeout', 'in-flight-budget', 'multiple-from', 'from-count', 'default',
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
  /** Set when the enforced verdict is weaker than the DMARC policy the failing domain published. */
  readonly override?: PolicyOverride;
}

/**
 * What trusted the message over a published DMARC policy. `by` is a metric label (closed set):
 * `arc` a rule on a trusted ARC sealer, `forwarder` a rule on the client IP or its
 * forward-confirmed name, `rule` any other rule, a monitor rule, or no rule at all.
 */
export const OVERRIDE_BY = ['arc', 'forwarder', 'rule'] as const;
export interface PolicyOverride {
  /** RFC 7489 Appendix C PolicyOverrideType, as DMARC aggregate reports name it. */
  readonly type: 'local_policy' | 'trusted_forwarder';
  readonly by: (typeof OVERRIDE_BY)[number];
  /** The published policy that was not applied. */
  readonly policy: 'quarantine' | 'reject';
  /** The deciding rule, '' when no rule matched. */
  readonly rule: string;
  /** The newest ARC sealer, when `by` is arc. */
  readonly sealer?: string;
  /** RFC 8617 §7.2.2 style comment for reports: "arc=pass as[2].d=lists.example as[1].d=…". */
  readonly comment: string;
}

export const ACCEPT_DEFAULT: Verdict = { action: 'accept', rule: '', reason: 'default' };
