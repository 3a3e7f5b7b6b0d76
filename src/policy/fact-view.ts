/**
 * Facts as a security team writes them: a flat mapping whose names are the rule match keys
 * (`spf: fail`, `dmarc_policy: reject`, `arc_sealer: lists.example`). `postern explain` and
 * `postern replay --show` print this view; `*.test.yaml` cases are written in it
 * (testing/case-facts.ts turns it back into Facts).
 */
import type { Facts } from '../core/facts.ts';
import { arcChainState, lastSealer, multipleFrom, sealerDmarc } from './conditions.ts';
import type { MatchKey } from './types.ts';

/** One value per match key, plus `first_seen` (seconds) for `first_seen_within`. */
export type FactView = Partial<Record<MatchKey | 'first_seen' | 'sender', string | number | boolean | null | readonly string[]>>;

function anyTemperror(f: Facts): boolean {
  return f.spf.result === 'temperror' || f.arc?.result === 'temperror' || f.dmarc?.result === 'temperror'
    || (f.dkim ?? []).some((s) => s.result === 'temperror');
}

/** The flat view; without a message (refused at MAIL FROM) only the client, sender and SPF keys. */
export function factView(f: Facts): FactView {
  const view: FactView = {
    ip: f.client.ip,
    helo: f.client.helo,
    ptr: f.client.ptr,
    sender: f.envelope.sender,
    sender_domain: f.envelope.senderDomain,
    spf: f.spf.result,
    tier: f.client.tier,
  };
  if (!f.message) return view;
  const sigs = f.dkim ?? [];
  return {
    ...view,
    recipient: f.envelope.recipients,
    from_domain: f.message.fromDomain,
    dkim: sigs.length === 0 ? 'none' : sigs.map((s) => s.result),
    dkim_domain: sigs.filter((s) => s.result === 'pass').map((s) => s.domain),
    dkim_aligned: sigs.some((s) => s.result === 'pass' && s.aligned),
    arc: f.arc?.result ?? 'none',
    arc_chain: arcChainState(f),
    arc_sealer: lastSealer(f),
    arc_dmarc: sealerDmarc(f),
    dmarc: f.dmarc?.result ?? 'none',
    dmarc_policy: f.dmarc?.policy ?? 'absent',
    auth_temperror: anyTemperror(f),
    multiple_from: multipleFrom(f),
    // not counted (authentication abandoned) is left out: the key never matches then
    ...(f.message.fromFields !== undefined ? { from_count: f.message.fromFields } : {}),
    first_seen: f.message.firstSeenSeconds,
  };
}

/** The value of one key as text, for explanations: "fail", "[pass, fail]", "(none)". */
export function factText(view: FactView, key: MatchKey): string {
  const value = key === 'first_seen_within' ? view.first_seen : view[key];
  if (value === undefined) return '(not known yet)';
  if (key === 'first_seen_within') return `first seen ${String(value)} s ago`;
  if (value === null || value === '') return '(none)';
  if (Array.isArray(value)) return value.length === 0 ? '(none)' : value.join(', ');
  return String(value);
}

/** A fact in parentheses after its key, "dmarc (fail)"; "(none)" stays as it is, never "((none))". */
export function inParens(fact: string): string {
  return fact.startsWith('(') && fact.endsWith(')') ? fact : `(${fact})`;
}

/** `key=value` pairs of the keys given (all by default) that have a value, for one-line output. */
export function factLine(view: FactView, keys: readonly (keyof FactView)[] = Object.keys(view) as Array<keyof FactView>): string {
  return keys.filter((k) => view[k] !== undefined && view[k] !== null && view[k] !== '')
    .map((k) => {
      const v = view[k];
      return `${k}=${Array.isArray(v) ? (v.length ? v.join(',') : '(none)') : String(v)}`;
    }).join(' ');
}
