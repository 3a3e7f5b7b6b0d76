/**
 * One precompiled condition per match key. Each test reads only normalised facts (core/facts.ts)
 * and Sets or matchers built at load; nothing here parses YAML or touches a file.
 */
import type { AuthResult, DkimSignatureFacts, Facts } from '../core/facts.ts';
import type { IpMatcher } from './ip.ts';
import type { NameMatcher } from './names.ts';
import { MAIL_STAGE_KEYS, type Condition, type MatchInput, type MatchKey } from './types.ts';

const NO_SIGNATURES: readonly DkimSignatureFacts[] = [];

function signatures(facts: Facts): readonly DkimSignatureFacts[] {
  return facts.dkim ?? NO_SIGNATURES;
}

function condition(key: MatchKey, test: (input: MatchInput) => boolean): Condition {
  return Object.freeze({ key, stage: MAIL_STAGE_KEYS.has(key) ? 'mail' : 'data', test });
}

export function ipCondition(match: IpMatcher): Condition {
  return condition('ip', (input) => {
    const ip = input.clientIp();
    return ip !== null && match(ip);
  });
}

/** helo, ptr, sender_domain, from_domain: a single name from the facts; absent never matches. */
export function nameCondition(key: 'helo' | 'ptr' | 'sender_domain' | 'from_domain', match: NameMatcher): Condition {
  const read: (f: Facts) => string | null | undefined = {
    helo: (f: Facts) => f.client.helo,
    ptr: (f: Facts) => f.client.ptr,
    sender_domain: (f: Facts) => f.envelope.senderDomain,
    from_domain: (f: Facts) => f.message?.fromDomain,
  }[key];
  return condition(key, ({ facts }) => {
    const value = read(facts);
    return !!value && match(value);
  });
}

/** Any recipient of the message matches (so `not: { recipient: … }` means none does). */
export function recipientCondition(match: NameMatcher): Condition {
  return condition('recipient', ({ facts }) => facts.envelope.recipients.some(match));
}

/** A passing signature whose d= matches. */
export function dkimDomainCondition(match: NameMatcher): Condition {
  return condition('dkim_domain', ({ facts }) => signatures(facts).some((s) => s.result === 'pass' && match(s.domain)));
}

export function resultCondition(key: 'spf' | 'dkim' | 'arc' | 'dmarc', results: readonly AuthResult[]): Condition {
  const wanted = new Set(results);
  switch (key) {
    case 'spf': return condition(key, ({ facts }) => wanted.has(facts.spf.result));
    case 'arc': return condition(key, ({ facts }) => wanted.has(facts.arc?.result ?? 'none'));
    case 'dmarc': return condition(key, ({ facts }) => wanted.has(facts.dmarc?.result ?? 'none'));
    // Any signature with a wanted result; no signature at all is the result `none`.
    case 'dkim': return condition(key, ({ facts }) => {
      const sigs = signatures(facts);
      return sigs.length === 0 ? wanted.has('none') : sigs.some((s) => wanted.has(s.result));
    });
  }
}

export function dmarcPolicyCondition(policies: readonly string[]): Condition {
  const wanted = new Set(policies);
  return condition('dmarc_policy', ({ facts }) => wanted.has(facts.dmarc?.policy ?? 'absent'));
}

export function tierCondition(tiers: readonly string[]): Condition {
  const wanted = new Set(tiers);
  return condition('tier', ({ facts }) => wanted.has(facts.client.tier));
}

/** A passing signature aligned with the From domain (RFC 7489 §3.1.1) exists, or not. */
export function dkimAlignedCondition(expected: boolean): Condition {
  return condition('dkim_aligned', ({ facts }) => signatures(facts).some((s) => s.result === 'pass' && s.aligned) === expected);
}

/** A DNS temperror in any check: the result could change on retry (RFC 8601 §2.7.1). */
export function authTemperrorCondition(expected: boolean): Condition {
  return condition('auth_temperror', ({ facts }) => {
    const any = facts.spf.result === 'temperror'
      || facts.arc?.result === 'temperror'
      || facts.dmarc?.result === 'temperror'
      || signatures(facts).some((s) => s.result === 'temperror');
    return any === expected;
  });
}

/**
 * More than one From field, or more than one author mailbox in them (RFC 5322 §3.6, §3.6.2).
 * DMARC has no single author domain then, and which From a reader shows differs by client:
 * the published "multiple From" DMARC bypass.
 */
export function multipleFromCondition(expected: boolean): Condition {
  return condition('multiple_from', ({ facts }) => multipleFrom(facts) === expected);
}

/** More than one From field or author; not counted (no message yet) is not multiple. */
export function multipleFrom(facts: Facts): boolean {
  const m = facts.message;
  return (m?.fromFields ?? 0) > 1 || (m?.fromAddresses ?? 0) > 1;
}

/**
 * The number of From header fields is one of the counts asked for (`from_count: 0`, `">1"`).
 * RFC 5322 §3.6 wants exactly one; with none DMARC has no author domain to check (RFC 7489
 * §6.6.1: such messages "are typically rejected"), and a backend that adds a missing From
 * (Postfix's local_header_rewrite_clients) would make the envelope sender the author. Not
 * counted (no message yet, or the authentication was abandoned) never matches.
 */
export function fromCountCondition(tests: ReadonlyArray<(n: number) => boolean>): Condition {
  return condition('from_count', ({ facts }) => {
    const n = facts.message?.fromFields;
    return n !== undefined && tests.some((test) => test(n));
  });
}

/** The message was first offered less than `seconds` ago: the retry window of a tempfail rule. */
export function firstSeenCondition(seconds: number): Condition {
  return condition('first_seen_within', ({ facts }) => (facts.message?.firstSeenSeconds ?? 0) < seconds);
}

/**
 * The ARC chain as a three-state fact (RFC 8617 §4.4 cv values): `none` without ARC headers,
 * `pass` when every seal and the newest ARC-Message-Signature validated, `fail` otherwise
 * (RFC 8617 §5.2: all failures are permanent in ARC; a DNS temperror is `fail` here and
 * `temperror` for the `arc` key).
 */
export function arcChainState(facts: Facts): 'pass' | 'fail' | 'none' {
  const result = facts.arc?.result ?? 'none';
  return result === 'pass' || result === 'none' ? result : 'fail';
}

/** The newest sealer (d= of the highest ARC-Seal) of a validated chain, or null. */
export function lastSealer(facts: Facts): string | null {
  return facts.arc?.result === 'pass' ? (facts.arc.sealers?.at(-1) ?? null) : null;
}

/**
 * The DMARC result the newest sealer recorded for this message's From domain. `none` when
 * the chain did not validate, its newest ARC-Authentication-Results has no dmarc= result, or
 * that result was for another From domain (a sealer's word counts only for the author it checked).
 */
export function sealerDmarc(facts: Facts): AuthResult {
  const said = facts.arc?.result === 'pass' ? facts.arc.sealerDmarc : null;
  if (!said) return 'none';
  const from = facts.message?.fromDomain ?? facts.dmarc?.domain ?? null;
  return said.fromDomain !== null && said.fromDomain === from ? said.result : 'none';
}

export function arcChainCondition(states: readonly string[]): Condition {
  const wanted = new Set(states);
  return condition('arc_chain', ({ facts }) => wanted.has(arcChainState(facts)));
}

export function arcSealerCondition(match: NameMatcher): Condition {
  return condition('arc_sealer', ({ facts }) => {
    const sealer = lastSealer(facts);
    return sealer !== null && match(sealer);
  });
}

export function arcDmarcCondition(results: readonly AuthResult[]): Condition {
  const wanted = new Set(results);
  return condition('arc_dmarc', ({ facts }) => wanted.has(sealerDmarc(facts)));
}
