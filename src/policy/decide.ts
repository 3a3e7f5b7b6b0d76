/**
 * The policy decision: pure, no I/O, no clock (the first-seen age is a fact). Rules are
 * walked in order and the first match decides.
 *
 * Stages. At `data` every fact is known: the first matching rule decides; no match is
 * accept with reason 'default'. At `mail` (MAIL FROM: client, HELO, envelope sender, SPF,
 * tier) each rule is evaluated in three-valued logic: a condition on a data-stage fact is
 * unknown. A rule that is certainly false is skipped (it is false at DATA too, since the
 * mail-stage facts do not change). A rule that may match once the message is read stops the
 * walk: null, decide at DATA. A rule that certainly matches returns its verdict only when it
 * refuses (enforced reject or tempfail), so the gateway can refuse at MAIL FROM (e.g.
 * 550 5.7.23 for SPF fail); any other action is null and DATA reaches the same rule.
 *
 * Monitor mode. A monitor rule that matches decides like any rule, but the decision is
 * `enforced`: accept (rule = its name) with `wouldHave`: what enforcing it would have done.
 * Monitor rules never stop a transaction: at `mail` a monitor match is null, reported at DATA.
 *
 * Overrides. A verdict weaker than the DMARC policy a failing domain published carries
 * `override` (who was trusted: an ARC sealer, a forwarder, a rule), so it is never a silent pass.
 */
import type { Facts } from '../core/facts.ts';
import { ACCEPT_DEFAULT, type Decision, type Verdict } from '../core/verdict.ts';
import { parseClientIp, type ClientIp } from './ip.ts';
import { overrideOf } from './override.ts';
import type { CompiledMatch, CompiledRule, MatchInput, RuleSet, Stage } from './types.ts';

const NO = 0;
const YES = 1;
const UNKNOWN = 2;
type Tri = typeof NO | typeof YES | typeof UNKNOWN;

const DEFAULT_DECISION: Decision = Object.freeze({ enforced: Object.freeze({ ...ACCEPT_DEFAULT }) });

/** Kleene AND over the conditions, and NOT of the `not:` sub-match. */
function evaluate(match: CompiledMatch, input: MatchInput, stage: Stage): Tri {
  let result: Tri = YES;
  for (const c of match.conditions) {
    if (stage === 'mail' && c.stage === 'data') {
      result = UNKNOWN;
      continue;
    }
    if (!c.test(input)) return NO;
  }
  if (match.not) {
    const negated = evaluate(match.not, input, stage);
    if (negated === YES) return NO;
    if (negated === UNKNOWN) result = UNKNOWN;
  }
  return result;
}

/** The client IP is parsed at most once per decision, however many `ip` rules there are. */
function matchInput(facts: Facts): MatchInput {
  let ip: ClientIp | null | undefined;
  return {
    facts,
    clientIp: () => (ip === undefined ? (ip = parseClientIp(facts.client.ip)) : ip),
  };
}

/** The decision, with the override when it is weaker than the DMARC policy published (override.ts). */
function decision(facts: Facts, enforced: Verdict, rule: CompiledRule | null, wouldHave?: Verdict): Decision {
  const override = overrideOf(facts, enforced, rule);
  if (!override) return rule === null ? DEFAULT_DECISION : wouldHave ? { enforced, wouldHave } : { enforced };
  return wouldHave ? { enforced, wouldHave, override } : { enforced, override };
}

export function decide(facts: Facts, ruleSet: RuleSet, stage: Stage): Decision | null {
  const input = matchInput(facts);
  for (const rule of ruleSet.rules) {
    const matched = evaluate(rule.match, input, stage);
    if (matched === NO) continue;
    if (matched === UNKNOWN) return null;
    if (rule.mode === 'monitor') return stage === 'mail' ? null : decision(facts, rule.monitorAccept, rule, rule.verdict(facts));
    if (stage === 'data' || rule.action === 'reject' || rule.action === 'tempfail') return decision(facts, rule.verdict(facts), rule);
    return null;
  }
  return stage === 'mail' ? null : decision(facts, DEFAULT_DECISION.enforced, null);
}
