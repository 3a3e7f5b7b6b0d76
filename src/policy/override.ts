/**
 * Local-policy overrides of DMARC (RFC 7489 §6.7, §7.2 PolicyOverrideType): the domain in From
 * published p=quarantine or p=reject, the message failed DMARC, and the verdict is weaker than
 * that policy. Such a pass is never silent: the decision carries the override (logged in the
 * decision record, counted in postern_policy_overrides_total, reported in DMARC aggregates).
 */
import type { Facts } from '../core/facts.ts';
import type { PolicyOverride, Verdict } from '../core/verdict.ts';
import type { CompiledRule } from './types.ts';

/** Weaker than the published policy: reject → anything but reject/tempfail; quarantine → accept or tag. */
function weakerThan(policy: 'quarantine' | 'reject', verdict: Verdict): boolean {
  if (policy === 'reject') return verdict.action !== 'reject' && verdict.action !== 'tempfail';
  return verdict.action === 'accept' || verdict.action === 'tag';
}

/**
 * RFC 8617 §7.2.2: the sealers of the chain, newest first, as a report comment
 * ("arc=pass as[2].d=lists.example as[2].s=arc1 as[1].d=…"); the selector when it is known
 * (facts from decision records written before selectors were recorded have none).
 */
function arcComment(sealers: readonly string[], selectors: readonly string[]): string {
  const sets = sealers.map((d, i) => `as[${i + 1}].d=${d}${selectors[i] ? ` as[${i + 1}].s=${selectors[i]}` : ''}`);
  return ['arc=pass', ...sets.reverse()].join(' ');
}

export function overrideOf(facts: Facts, verdict: Verdict, rule: CompiledRule | null): PolicyOverride | undefined {
  const dmarc = facts.dmarc;
  if (dmarc?.result !== 'fail' || (dmarc.policy !== 'reject' && dmarc.policy !== 'quarantine')) return undefined;
  if (!weakerThan(dmarc.policy, verdict)) return undefined;
  const positive = new Set(rule?.match.conditions.map((c) => c.key) ?? []);
  const name = rule?.name ?? '';
  const sealers = facts.arc?.result === 'pass' ? (facts.arc.sealers ?? []) : [];
  const sealer = sealers.at(-1);
  if (positive.has('arc_sealer') && sealer) {
    return { type: 'local_policy', by: 'arc', policy: dmarc.policy, rule: name, sealer, comment: arcComment(sealers, facts.arc?.selectors ?? []) };
  }
  if (positive.has('ip') || positive.has('ptr')) {
    const ptr = facts.client.ptr ? ` ptr=${facts.client.ptr}` : '';
    return { type: 'trusted_forwarder', by: 'forwarder', policy: dmarc.policy, rule: name, comment: `rule=${name} ip=${facts.client.ip}${ptr}` };
  }
  const mode = rule?.mode === 'monitor' ? ' (monitor mode)' : '';
  return { type: 'local_policy', by: 'rule', policy: dmarc.policy, rule: name, comment: name ? `rule=${name}${mode}` : 'no rule matched' };
}
