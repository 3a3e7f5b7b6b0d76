/**
 * One message → one aggregate-report row (RFC 9990 §2.1 "record"): who sent it, what DMARC
 * said, what we did, and the raw SPF/DKIM results. Rows with the same content are counted
 * together, so a row is encoded as one compact, canonical string (the counter's field).
 */
import type { AuthResult, DmarcPublished, Facts } from '../core/facts.ts';
import type { Action, PolicyOverride } from '../core/verdict.ts';
import { domainOf } from '../core/domain.ts';

/** RFC 9990 ActionDispositionType: "pass" = no action, DMARC passed under an enforcing policy. */
export type Disposition = 'none' | 'pass' | 'quarantine' | 'reject';
/** RFC 9990 PolicyOverrideType. */
export type OverrideType = 'local_policy' | 'mailing_list' | 'other' | 'policy_test_mode' | 'trusted_forwarder';
export type DkimReportResult = 'none' | 'pass' | 'fail' | 'policy' | 'neutral' | 'temperror' | 'permerror';

export interface ReportRow {
  readonly sourceIp: string;
  readonly disposition: Disposition;
  /** DMARC-aligned DKIM / SPF outcome (RFC 9990 DMARCResultType). */
  readonly dkim: 'pass' | 'fail';
  readonly spf: 'pass' | 'fail';
  readonly reasons: ReadonlyArray<{ readonly type: OverrideType; readonly comment: string }>;
  readonly headerFrom: string;
  readonly envelopeFrom: string;
  readonly envelopeTo: string;
  readonly dkimResults: ReadonlyArray<{ readonly domain: string; readonly selector: string; readonly result: DkimReportResult }>;
  readonly spfResult: { readonly domain: string; readonly scope: 'mfrom' | null; readonly result: AuthResult } | null;
}

/** What the end of a transaction knows (pipeline/record.ts hands it over). */
export interface TransactionOutcome {
  readonly facts: Facts;
  /** What actually happened to the message (a backend refusal counts as reject). */
  readonly action: Action;
  /** The deciding rule ('' for none). */
  readonly rule: string;
  /** Set when a monitor-mode rule matched: what it would have done. */
  readonly wouldHave?: { readonly action: Action; readonly rule: string };
  /** What the policy trusted over the published DMARC policy (a trusted ARC sealer or forwarder, a rule). */
  readonly override?: PolicyOverride;
}

export interface Collected {
  /** The DMARC Policy Domain: reports are per policy domain (RFC 9990 §2.1 policy_published domain). */
  readonly domain: string;
  readonly published: DmarcPublished;
  readonly row: ReportRow;
}

const STRENGTH: Readonly<Record<string, number>> = { none: 0, pass: 0, quarantine: 1, reject: 2 };
const DKIM_RESULTS = new Set<string>(['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror']);

/** A mailto: URI among the rua= list: the only scheme we deliver to (RFC 9990 §4). */
export function hasMailtoRua(published: DmarcPublished): boolean {
  return published.rua.some((u) => /^mailto:/i.test(u));
}

/**
 * The row for a finished transaction, or null when it is not reported: no DMARC record with
 * a mailto rua=, or no final outcome yet (a tempfail is retried by the sender and counted when
 * it ends, RFC 9990 §2.1 counts messages, not attempts).
 */
export function collectedFrom(o: TransactionOutcome): Collected | null {
  const { facts } = o;
  const dmarc = facts.dmarc;
  const published = dmarc?.published;
  if (!dmarc || !published || !hasMailtoRua(published) || o.action === 'tempfail') return null;
  const disposition: Disposition = o.action === 'reject' ? 'reject'
    : o.action === 'quarantine' ? 'quarantine'
    : dmarc.result === 'pass' && (dmarc.policy === 'quarantine' || dmarc.policy === 'reject') ? 'pass' : 'none';
  const firstRecipient = facts.envelope.recipients[0];
  return {
    domain: published.domain,
    published,
    row: {
      sourceIp: facts.client.ip,
      disposition,
      dkim: dmarc.dkimAligned ? 'pass' : 'fail',
      spf: dmarc.spfAligned ? 'pass' : 'fail',
      reasons: overrides(o, disposition),
      headerFrom: dmarc.domain,
      envelopeFrom: facts.envelope.senderDomain,
      envelopeTo: firstRecipient ? domainOf(firstRecipient) : '',
      dkimResults: (facts.dkim ?? []).map((d) => ({
        domain: d.domain,
        selector: d.selector,
        result: (DKIM_RESULTS.has(d.result) ? d.result : 'fail') as DkimReportResult, // DKIM has no softfail
      })),
      spfResult: facts.spf.domain
        ? { domain: facts.spf.domain, scope: facts.spf.identity === 'mailfrom' ? 'mfrom' : null, result: facts.spf.result }
        : null,
    },
  };
}

/** RFC 9989 §4.7 t=y: the policy applied is one step below the one published. */
const TEST_MODE_STEP: Readonly<Record<string, 'none' | 'quarantine' | 'reject'>> = { reject: 'quarantine', quarantine: 'none', none: 'none' };

/**
 * RFC 9990 §2.1 policy_evaluated: when the disposition differs from the policy the domain
 * PUBLISHED, say why. facts.dmarc.policy is the policy after the t=y downgrade (mailauth
 * applies it), so the comparison uses the published value (dmarc.applied: p, sp or np as
 * written). One step below it under t=y is the test mode alone; weaker still, the test mode
 * and then our own reason (the policy's override, a rule, a monitor-mode rule); stronger is
 * our own policy.
 */
function overrides(o: TransactionOutcome, disposition: Disposition): Array<{ type: OverrideType; comment: string }> {
  const dmarc = o.facts.dmarc!;
  const fails = dmarc.result !== 'pass';
  const published = dmarc.applied?.value ?? dmarc.policy ?? 'none';
  // without dmarc.applied the policy known is the one after any downgrade: no second step
  const testing = Boolean(dmarc.published?.testing) && dmarc.applied !== undefined;
  const asked = fails ? STRENGTH[published]! : 0;
  const testStep = fails && testing ? STRENGTH[TEST_MODE_STEP[published]!]! : asked;
  const actual = STRENGTH[disposition]!;
  if (actual === asked) return [];
  const out: Array<{ type: OverrideType; comment: string }> = [];
  if (actual < asked && testing) {
    out.push({ type: 'policy_test_mode', comment: `t=y: ${published} applied as ${TEST_MODE_STEP[published]}` });
    if (actual === testStep) return out;
  }
  // the policy's own account of the override: trusted_forwarder for an ARC sealer or a forwarder
  if (o.override && actual < asked) {
    out.push({ type: o.override.type, comment: o.override.comment });
    return out;
  }
  const comment = o.wouldHave
    ? `monitor mode: rule ${o.wouldHave.rule} would ${o.wouldHave.action}`
    : o.rule ? `rule ${o.rule}` : 'local policy';
  out.push({ type: 'local_policy', comment });
  return out;
}

/** Canonical text of a row: the counter field. Arrays, not objects: short and ordered. */
export function encodeRow(row: ReportRow): string {
  return JSON.stringify([
    row.sourceIp, row.disposition, row.dkim, row.spf, row.reasons.map((r) => [r.type, r.comment]),
    row.headerFrom, row.envelopeFrom, row.envelopeTo,
    row.dkimResults.map((d) => [d.domain, d.selector, d.result]),
    row.spfResult ? [row.spfResult.domain, row.spfResult.scope, row.spfResult.result] : null,
  ]);
}

type Encoded = [string, Disposition, 'pass' | 'fail', 'pass' | 'fail', Array<[OverrideType, string]>, string, string, string,
  Array<[string, string, DkimReportResult]>, [string, 'mfrom' | null, AuthResult] | null];

/** The inverse of encodeRow; null for a field that is not one (a foreign or damaged key). */
export function decodeRow(text: string): ReportRow | null {
  try {
    const v = JSON.parse(text) as Encoded;
    if (!Array.isArray(v) || v.length !== 10 || typeof v[0] !== 'string') return null;
    return {
      sourceIp: v[0], disposition: v[1], dkim: v[2], spf: v[3],
      reasons: v[4].map(([type, comment]) => ({ type, comment })),
      headerFrom: v[5], envelopeFrom: v[6], envelopeTo: v[7],
      dkimResults: v[8].map(([domain, selector, result]) => ({ domain, selector, result })),
      spfResult: v[9] ? { domain: v[9][0], scope: v[9][1], result: v[9][2] } : null,
    };
  } catch {
    return null;
  }
}
