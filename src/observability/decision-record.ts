/**
 * The decision record, version 1: one JSON object per finished transaction, written as the
 * `decision` log line and (optionally) to `decisions.file`. It carries every fact a policy
 * rule can match on, so `postern replay` can decide the message again under another policy
 * (src/policy/record-facts.ts is the inverse). The shape is a contract with outside tools:
 * add fields freely, but rename or remove one only with a new `v`. README.md "Decision records"
 * documents every field.
 */
import type { DmarcFacts, DmarcPublished, Facts } from '../core/facts.ts';
import type { Action, Decision, PolicyOverride, Reason } from '../core/verdict.ts';

export const DECISION_RECORD_VERSION = 1;

export interface RecordedVerdict { readonly action: Action; readonly rule: string; readonly reason: Reason }

export interface DecisionRecord {
  readonly v: 1;
  readonly event: 'decision';
  readonly client: { readonly ip: string; readonly ptr: string | null; readonly helo: string; readonly tls: boolean; readonly tier: string };
  readonly envelope: { readonly from: string; readonly sender_domain: string; readonly to: readonly string[] };
  readonly from_domain: string | null;
  /** From header fields and author mailboxes in them (multiple_from); absent before DATA. */
  readonly from_fields?: number;
  readonly from_addresses?: number;
  readonly message_id: string | null;
  readonly size: number | null;
  /** Seconds since this message was first offered (first_seen_within); null before DATA. */
  readonly first_seen: number | null;
  readonly auth: {
    readonly spf: { readonly result: string; readonly domain: string; readonly identity: string; readonly reason: string };
    readonly dkim: ReadonlyArray<{ readonly result: string; readonly domain: string; readonly selector: string; readonly algorithm: string; readonly aligned: boolean; readonly reason: string }> | null;
    readonly arc: {
      readonly result: string; readonly reason: string;
      readonly sealers?: readonly string[];
      readonly selectors?: readonly string[];
      readonly sealer_dmarc?: { readonly result: string; readonly from_domain: string | null } | null;
    } | null;
    readonly dmarc: {
      readonly result: string; readonly domain: string; readonly policy: string | null;
      readonly spf_aligned: boolean; readonly dkim_aligned: boolean; readonly reason: string;
      /** The tag that applied and its value as published, before a t=y downgrade. */
      readonly applied?: DmarcFacts['applied'];
      /** The record that applied, as published at the DMARC Policy Domain (`domain`). */
      readonly published?: DmarcPublished;
    } | null;
  };
  /** Where the transaction ended: MAIL FROM (a refusal there) or end of DATA. */
  readonly stage: 'mail' | 'data';
  /** What the policy decided; null when no policy decision was reached (oversize, bad line endings). */
  readonly verdict: RecordedVerdict | null;
  readonly would_have?: { readonly action: Action; readonly rule: string };
  readonly override?: PolicyOverride;
  /** What actually happened: a backend refusal or failure overrides the verdict's accept. */
  readonly rule: string;
  readonly action: Action;
  readonly reason: Reason;
  /** How the transaction ended, when the pipeline names it (delivered, policy, backend-refused, …). */
  readonly ending?: string;
  readonly reply?: string;
  readonly backend?: string;
  readonly error?: string;
  readonly ms?: Record<string, number>;
}

export interface RecordInput {
  readonly facts: Facts;
  readonly stage: 'mail' | 'data';
  readonly decision?: Decision;
  /** Final outcome. */
  readonly rule: string;
  readonly action: Action;
  readonly reason: Reason;
  /** Recipients when the facts have none yet (a refusal at MAIL FROM). */
  readonly recipients?: readonly string[];
  readonly ending?: string;
  readonly reply?: string;
  readonly backend?: string;
  readonly error?: string;
  readonly ms?: Record<string, number>;
}

function authOf(f: Facts): DecisionRecord['auth'] {
  const arc = f.arc;
  return {
    spf: { result: f.spf.result, domain: f.spf.domain, identity: f.spf.identity, reason: f.spf.reason },
    dkim: f.dkim?.map((d) => ({ result: d.result, domain: d.domain, selector: d.selector, algorithm: d.algorithm, aligned: d.aligned, reason: d.reason })) ?? null,
    arc: arc ? {
      result: arc.result, reason: arc.reason,
      ...(arc.sealers ? { sealers: arc.sealers } : {}),
      ...(arc.selectors ? { selectors: arc.selectors } : {}),
      ...(arc.sealerDmarc !== undefined ? { sealer_dmarc: arc.sealerDmarc && { result: arc.sealerDmarc.result, from_domain: arc.sealerDmarc.fromDomain } } : {}),
    } : null,
    dmarc: f.dmarc ? {
      result: f.dmarc.result, domain: f.dmarc.domain, policy: f.dmarc.policy,
      spf_aligned: f.dmarc.spfAligned, dkim_aligned: f.dmarc.dkimAligned, reason: f.dmarc.reason,
      ...(f.dmarc.applied ? { applied: f.dmarc.applied } : {}),
      ...(f.dmarc.published ? { published: f.dmarc.published } : {}),
    } : null,
  };
}

export function decisionRecord(input: RecordInput): DecisionRecord {
  const f = input.facts;
  const enforced = input.decision?.enforced;
  const would = input.decision?.wouldHave;
  const recipients = f.envelope.recipients.length > 0 ? f.envelope.recipients : (input.recipients ?? []);
  return {
    v: DECISION_RECORD_VERSION,
    event: 'decision',
    client: { ip: f.client.ip, ptr: f.client.ptr, helo: f.client.helo, tls: f.client.tls, tier: f.client.tier },
    envelope: { from: f.envelope.sender, sender_domain: f.envelope.senderDomain, to: recipients },
    from_domain: f.message?.fromDomain ?? null,
    ...(f.message?.fromFields !== undefined ? { from_fields: f.message.fromFields } : {}),
    ...(f.message?.fromAddresses !== undefined ? { from_addresses: f.message.fromAddresses } : {}),
    message_id: f.message?.messageId ?? null,
    size: f.message?.size ?? null,
    first_seen: f.message?.firstSeenSeconds ?? null,
    auth: authOf(f),
    stage: input.stage,
    verdict: enforced ? { action: enforced.action, rule: enforced.rule, reason: enforced.reason } : null,
    ...(would ? { would_have: { action: would.action, rule: would.rule } } : {}),
    ...(input.decision?.override ? { override: input.decision.override } : {}),
    rule: input.rule,
    action: input.action,
    reason: input.reason,
    ...(input.ending !== undefined ? { ending: input.ending } : {}),
    ...(input.reply !== undefined ? { reply: input.reply } : {}),
    ...(input.backend !== undefined ? { backend: input.backend } : {}),
    ...(input.error !== undefined ? { error: input.error } : {}),
    ...(input.ms ? { ms: input.ms } : {}),
  };
}
