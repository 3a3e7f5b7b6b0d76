/**
 * Policy tests: `*.test.yaml` files beside the policies, each a list of cases
 * `{ name, facts, expect: { action, rule, … } }`, decided against the policy set as at end of
 * DATA. Cases are validated one by one (one bad case does not hide the others), and every
 * problem and every failure names file:line.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { ConfigError, ConfigErrors } from '../../core/errors.ts';
import { ACTIONS, OVERRIDE_BY, REASONS, type Decision } from '../../core/verdict.ts';
import { explainDecision, whyNot } from '../explain.ts';
import { compilePolicies } from '../load.ts';
import { issuesToErrors } from '../schema-errors.ts';
import { MATCH_KEYS, type MatchKey, type RuleSet } from '../types.ts';
import { errorAt, locate, parseYamlSource, type YamlSource } from '../yaml-source.ts';
import { caseFacts, caseFactsSchema, type CaseFacts } from './case-facts.ts';

const action = z.enum(ACTIONS, { error: `expected one of ${ACTIONS.join(', ')}` });

export const caseSchema = z.strictObject({
  name: z.string({ error: 'expected a case name' }).min(1, 'expected a case name').describe('What the case checks, shown when it fails'),
  facts: caseFactsSchema.nullish().describe('The message, with the names of the rule match keys; left out: nothing authenticated, nothing published'),
  expect: z.strictObject({
    action: action.describe('The enforced action'),
    rule: z.string().optional().describe('The deciding rule; "" for none (accepted by default)'),
    reason: z.enum(REASONS).optional().describe('The reason label'),
    would_have: z.union([action, z.literal('none'), z.strictObject({ action, rule: z.string().optional() })]).optional()
      .describe('What a monitor rule would have done, or none'),
    override: z.enum([...OVERRIDE_BY, 'none']).optional().describe('DMARC override recorded: arc, forwarder, rule, or none'),
  }, { error: 'expect is a mapping with action and optionally rule, reason, would_have, override' }),
}, { error: 'a case is a mapping with name, facts and expect' });

export type PolicyCase = z.output<typeof caseSchema>;

export interface CaseOutcome {
  readonly file: string;
  readonly line: number;
  readonly name: string;
  /** Empty when the case passed. */
  readonly failure: string;
}

export interface TestRun {
  readonly outcomes: readonly CaseOutcome[];
  /** Problems in the test files themselves (syntax, unknown keys, contradictory facts). */
  readonly errors: readonly ConfigError[];
  /** Worth a look but not a failure: a test file with no cases (empty, or comments only). */
  readonly warnings: readonly ConfigError[];
}

export function isPolicyTestFileName(name: string): boolean {
  return !name.startsWith('.') && /\.test\.ya?ml$/.test(name);
}

/**
 * Every match key given as a fact must match the facts built from them: a rule
 * `match: { key: value }` per key. A contradiction is an error naming the key.
 */
function contradictions(c: CaseFacts, built: ReturnType<typeof caseFacts>, dir: string): string[] {
  const keys = (Object.keys(c) as Array<keyof CaseFacts>).filter((k): k is MatchKey & keyof CaseFacts =>
    (MATCH_KEYS as readonly string[]).includes(k) && c[k] !== null && !(k === 'dkim' && Array.isArray(c.dkim) && c.dkim.some((e) => typeof e !== 'string')));
  if (keys.length === 0) return [];
  const text = stringify({ rules: keys.map((k) => ({ name: `fact.${k}`, match: { [k]: c[k] }, action: 'accept' })) });
  let ruleSet: RuleSet;
  try {
    ruleSet = compilePolicies([{ path: 'facts', text }], dir);
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => `${e.key?.replace(/^rules\[\d+\]\.match\./, '') ?? 'facts'}: ${e.problem}`);
    throw err;
  }
  return ruleSet.rules.flatMap((rule, i) => {
    const one = explainDecision(built, { ...ruleSet, rules: [rule] }, 'data').rules[0];
    return one?.matched === 'yes' ? [] : [`${keys[i]}: contradicts the other facts given (${one ? whyNot(one) : 'not evaluated'})`];
  });
}

/** The keys allowed at a path of a test file, for "unknown key … did you mean". */
function allowedCaseKeys(path: readonly (string | number)[]): readonly string[] {
  const last = path[path.length - 1];
  if (path.length === 1) return Object.keys(caseSchema.shape);
  if (last === 'facts') return Object.keys(caseFactsSchema.shape);
  if (last === 'expect') return Object.keys(caseSchema.shape.expect.shape);
  return [];
}

/** "reject (rule dmarc-reject)", "accept (no rule matched)" for rule "", a bare "reject" when no rule was given. */
function describe(action: string, rule: string | undefined): string {
  if (rule === undefined) return action;
  return `${action} (${rule ? `rule ${rule}` : 'no rule matched'})`;
}

/** Empty when the decision meets the expectation, else what differs and why. */
function check(c: PolicyCase, d: Decision, why: (rule: string, action: string) => string): string {
  const e = c.expect;
  const got = d.enforced;
  const problems: string[] = [];
  if (got.action !== e.action || (e.rule !== undefined && got.rule !== e.rule)) {
    problems.push(`expected ${describe(e.action, e.rule)}, got ${describe(got.action, got.rule)}${e.rule ? `; ${why(e.rule, e.action)}` : ''}`);
  }
  if (e.reason !== undefined && got.reason !== e.reason) problems.push(`expected reason ${e.reason}, got ${got.reason}`);
  if (e.would_have !== undefined) {
    const want = typeof e.would_have === 'string' ? (e.would_have === 'none' ? null : { action: e.would_have }) : e.would_have;
    const have = d.wouldHave;
    const same = want === null ? !have : !!have && have.action === want.action && (want.rule === undefined || have.rule === want.rule);
    if (!same) problems.push(`expected would_have ${want ? describe(want.action, want.rule) : 'none'}, got ${have ? describe(have.action, have.rule) : 'none'}`);
  }
  if (e.override !== undefined && (d.override?.by ?? 'none') !== e.override) problems.push(`expected override ${e.override}, got ${d.override?.by ?? 'none'}`);
  return problems.join('; ');
}

/**
 * Why the expected rule did not give the expected action: it did not match (which keys), an
 * earlier rule did, or it did decide but its action is another (often: a rule taken out of
 * monitor mode, whose test still expects the monitor's accept).
 */
function whyRule(ruleSet: RuleSet, facts: ReturnType<typeof caseFacts>): (rule: string, action: string) => string {
  return (name, action) => {
    const rule = ruleSet.rules.find((r) => r.name === name);
    if (!rule) return `there is no rule ${name}`;
    const own = explainDecision(facts, { ...ruleSet, rules: [rule] }, 'data').rules[0];
    if (own && own.matched !== 'yes') return `${name}: ${whyNot(own)}`;
    const first = explainDecision(facts, ruleSet, 'data').rules.at(-1)?.rule.name;
    if (first !== name) return `${name} matches, but ${first ?? 'an earlier rule'} comes first`;
    if (rule.mode === 'monitor') return `${name} decides, but in monitor mode: it accepts (would ${rule.action}), not ${action}`;
    return `${name} decides, but with its action ${rule.action}, not ${action}${action === 'accept' ? ' (it accepts only in monitor mode)' : ''}`;
  };
}

function runCase(source: YamlSource, index: number, raw: unknown, ruleSet: RuleSet, errors: ConfigError[]): CaseOutcome | null {
  const where = locate(source, [index]);
  const parsed = caseSchema.safeParse(raw);
  if (!parsed.success) {
    errors.push(...issuesToErrors(source, [index], parsed.error.issues, allowedCaseKeys));
    return null;
  }
  const c = parsed.data;
  const facts = caseFacts(c.facts ?? {});
  const bad = contradictions(c.facts ?? {}, facts, ruleSet.dir);
  if (bad.length > 0) {
    for (const b of bad) errors.push(errorAt(locate(source, [index, 'facts']), `case "${c.name}": ${b}`));
    return null;
  }
  const decision = explainDecision(facts, ruleSet, 'data').decision;
  const failure = decision ? check(c, decision, whyRule(ruleSet, facts)) : 'no decision';
  return { file: source.file, line: where.line, name: c.name, failure };
}

/** Runs the cases of test files (given as text) against a loaded rule set. */
export function runPolicyTests(files: ReadonlyArray<{ path: string; text: string }>, ruleSet: RuleSet): TestRun {
  const outcomes: CaseOutcome[] = [];
  const errors: ConfigError[] = [];
  const warnings: ConfigError[] = [];
  for (const file of files) {
    const { source, errors: syntax } = parseYamlSource(file.path, file.text);
    if (syntax.length > 0) {
      errors.push(...syntax);
      continue;
    }
    const data: unknown = source.doc.toJS();
    // a file just created, or with every case commented out: nothing to run, nothing wrong
    if (data === null || (Array.isArray(data) && data.length === 0)) {
      warnings.push(new ConfigError('no test cases in this file (empty or comments only)', { file: source.file }));
      continue;
    }
    if (!Array.isArray(data)) {
      errors.push(errorAt(locate(source, []), 'a policy test file is a list of cases { name, facts, expect }'));
      continue;
    }
    data.forEach((raw, i) => {
      const outcome = runCase(source, i, raw, ruleSet, errors);
      if (outcome) outcomes.push(outcome);
    });
  }
  return { outcomes, errors, warnings };
}
