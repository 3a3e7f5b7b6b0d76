/**
 * Why a policy decided as it did: every rule in order, each match key with the fact it saw
 * and whether it held, up to the rule that decided. The same condition tests as decide.ts,
 * evaluated in full (no short cut) so every failing key is named; explainDecision() returns
 * decide()'s own Decision, and a test holds the two to the same rule on every case.
 */
import type { Facts } from '../core/facts.ts';
import type { Decision } from '../core/verdict.ts';
import { decide } from './decide.ts';
import { factText, factView, inParens, type FactView } from './fact-view.ts';
import { parseClientIp, type ClientIp } from './ip.ts';
import type { CompiledMatch, CompiledRule, MatchInput, MatchKey, RuleSet, Stage } from './types.ts';

export type Held = 'yes' | 'no' | 'unknown';

export interface KeyTrace {
  readonly key: MatchKey;
  /** Under `not:`: the rule needs this to be false. */
  readonly negated: boolean;
  readonly held: Held;
  /** The fact as text: "fail", "lists.example", "(none)". */
  readonly fact: string;
}

export interface RuleTrace {
  readonly rule: CompiledRule;
  readonly matched: Held;
  readonly keys: readonly KeyTrace[];
}

export interface Explanation {
  readonly stage: Stage;
  readonly view: FactView;
  /** Rules in order, up to and including the deciding one (all of them when none matched). */
  readonly rules: readonly RuleTrace[];
  /** decide()'s decision; null at MAIL FROM when the decision waits for DATA. */
  readonly decision: Decision | null;
}

function input(facts: Facts): MatchInput {
  let ip: ClientIp | null | undefined;
  return { facts, clientIp: () => (ip === undefined ? (ip = parseClientIp(facts.client.ip)) : ip) };
}

function traceMatch(match: CompiledMatch, mi: MatchInput, stage: Stage, view: FactView, negated: boolean): KeyTrace[] {
  const keys = match.conditions.map((c): KeyTrace => {
    const known = stage === 'data' || c.stage === 'mail';
    return { key: c.key, negated, held: known ? (c.test(mi) ? 'yes' : 'no') : 'unknown', fact: factText(view, c.key) };
  });
  return match.not ? [...keys, ...traceMatch(match.not, mi, stage, view, true)] : keys;
}

/** Kleene AND of the positive keys and NOT(AND of the `not:` keys), as decide.ts evaluates. */
function combine(keys: readonly KeyTrace[]): Held {
  const and = (list: readonly KeyTrace[]): Held =>
    list.some((k) => k.held === 'no') ? 'no' : list.some((k) => k.held === 'unknown') ? 'unknown' : 'yes';
  const positive = and(keys.filter((k) => !k.negated));
  const negatedKeys = keys.filter((k) => k.negated);
  const negated: Held = negatedKeys.length === 0 ? 'no' : and(negatedKeys);
  if (positive === 'no' || negated === 'yes') return 'no';
  return positive === 'unknown' || negated === 'unknown' ? 'unknown' : 'yes';
}

export function explainDecision(facts: Facts, ruleSet: RuleSet, stage: Stage = 'data'): Explanation {
  const view = factView(facts);
  const mi = input(facts);
  const rules: RuleTrace[] = [];
  for (const rule of ruleSet.rules) {
    const keys = traceMatch(rule.match, mi, stage, view, false);
    const matched = combine(keys);
    rules.push({ rule, matched, keys });
    // the first rule that matches, or may match once the message is read, ends the walk
    if (matched !== 'no') break;
  }
  return { stage, view, rules, decision: decide(facts, ruleSet, stage) };
}

/** Why one rule did not match: the keys that failed, "dmarc is pass (wanted by the rule: not this)". */
export function whyNot(trace: RuleTrace): string {
  if (trace.matched === 'unknown') return 'needs the message (decided at end of DATA)';
  const failed = trace.keys.filter((k) => (k.negated ? k.held === 'yes' : k.held === 'no'));
  return failed.map((k) => (k.negated ? `not: ${k.key} matched ${inParens(k.fact)}` : `${k.key} did not match ${inParens(k.fact)}`)).join('; ');
}
