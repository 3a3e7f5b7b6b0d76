/**
 * `postern replay`: decide every recorded decision again under a candidate rule set and count
 * what changes. Input is streamed line by line (pino logs or decisions.file, gzip or not);
 * lines that are not v1 decision records are counted and ignored. Memory stays flat: fixed
 * tables of actions and rules, bounded top lists (top.ts) and at most `show` examples per
 * transition.
 */
import { normaliseDomain } from '../../core/domain.ts';
import { normaliseIp } from '../../core/ip.ts';
import type { Action } from '../../core/verdict.ts';
import { decide } from '../decide.ts';
import { factView, type FactView } from '../fact-view.ts';
import { recordedDecision, type RecordedDecision, type SkipReason } from '../record-facts.ts';
import type { RuleSet } from '../types.ts';
import { fileLines } from './lines.ts';
import { TopCounter } from './top.ts';

export interface ReplayOptions {
  /** Example records to keep per transition. */
  readonly show: number;
  /** Examples only for the transitions whose action changes (--changed-only). */
  readonly changedOnly?: boolean;
}

export interface Example {
  readonly file: string;
  readonly line: number;
  readonly session: string;
  readonly time: string;
  readonly current: { readonly action: Action; readonly rule: string };
  readonly candidate: { readonly action: Action; readonly rule: string } | null;
  readonly facts: FactView;
}

export interface Transition {
  readonly from: Action;
  /** null: refused at MAIL FROM now, the candidate would wait for the message, which the record has not. */
  readonly to: Action | null;
  count: number;
  readonly examples: Example[];
}

export interface RuleTally {
  readonly rule: string;
  readonly action: Action;
  readonly mode: 'enforce' | 'monitor';
  /** Records this rule decides under the candidate. */
  matched: number;
  /** Of those, records whose action changes. */
  changed: number;
}

export interface ReplayTally {
  readonly files: string[];
  lines: number;
  /** Lines that are not decision records (other log lines, blank lines, broken JSON). */
  ignored: number;
  records: number;
  readonly skipped: Record<SkipReason, number>;
  redecided: number;
  /** Re-decided records whose action differs under the candidate. */
  changed: number;
  /** Refused at MAIL FROM now; under the candidate the decision would wait for the message the record has not. */
  undecidable: number;
  readonly transitions: Map<string, Transition>;
  /** Candidate rules in order, plus '' for messages no rule matched (default accept). */
  readonly rules: Map<string, RuleTally>;
  readonly changedDomains: TopCounter;
  readonly changedIps: TopCounter;
}

export function newTally(ruleSet: RuleSet): ReplayTally {
  const rules = new Map<string, RuleTally>();
  for (const r of ruleSet.rules) rules.set(r.name, { rule: r.name, action: r.action, mode: r.mode, matched: 0, changed: 0 });
  rules.set('', { rule: '', action: 'accept', mode: 'enforce', matched: 0, changed: 0 });
  return {
    files: [], lines: 0, ignored: 0, records: 0, skipped: { 'not-v1': 0, 'no-verdict': 0, malformed: 0 },
    redecided: 0, changed: 0, undecidable: 0, transitions: new Map(), rules, changedDomains: new TopCounter(), changedIps: new TopCounter(),
  };
}

/** Decides one record again and counts it. */
function tallyRecord(t: ReplayTally, ruleSet: RuleSet, rec: RecordedDecision, where: { file: string; line: number }, opts: ReplayOptions): void {
  const decision = decide(rec.facts, ruleSet, rec.stage);
  const candidate = decision ? { action: decision.enforced.action, rule: decision.enforced.rule } : null;
  t.redecided++;
  if (candidate) {
    const rule = t.rules.get(candidate.rule) ?? t.rules.get('');
    if (rule) rule.matched++;
  }
  const key = `${rec.verdict.action}>${candidate?.action ?? '?'}`;
  let tr = t.transitions.get(key);
  if (!tr) t.transitions.set(key, (tr = { from: rec.verdict.action, to: candidate?.action ?? null, count: 0, examples: [] }));
  tr.count++;
  if (!candidate) t.undecidable++;
  else if (candidate.action !== rec.verdict.action) {
    t.changed++;
    const rule = t.rules.get(candidate.rule);
    if (rule) rule.changed++;
    const f = rec.facts;
    // records from other writers (or hand-made) may differ in case or IPv4-mapped form: one row per domain and address
    t.changedDomains.add(normaliseDomain(f.message?.fromDomain || f.envelope.senderDomain) || '(none)');
    t.changedIps.add(normaliseIp(f.client.ip) ?? f.client.ip);
  }
  const changed = candidate !== null && candidate.action !== rec.verdict.action;
  if (tr.examples.length < opts.show && (changed || !opts.changedOnly)) {
    tr.examples.push({ ...where, session: rec.session, time: rec.time, current: rec.verdict, candidate, facts: factView(rec.facts) });
  }
}

/** Counts one line: a decision record is decided again, anything else is ignored. */
export function tallyLine(t: ReplayTally, ruleSet: RuleSet, text: string, where: { file: string; line: number }, opts: ReplayOptions): void {
  t.lines++;
  // Cheap test first: most lines of a log are not decisions, and JSON.parse is the cost.
  if (!text.includes('"decision"')) {
    t.ignored++;
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    t.ignored++;
    return;
  }
  if ((value as { event?: unknown } | null)?.event !== 'decision') {
    t.ignored++;
    return;
  }
  t.records++;
  const rec = recordedDecision(value);
  if ('skip' in rec) {
    t.skipped[rec.skip]++;
    return;
  }
  tallyRecord(t, ruleSet, rec, where, opts);
}

/** Streams every file through tallyLine. Rejects on the first file that cannot be read. */
export async function replayFiles(files: readonly string[], ruleSet: RuleSet, opts: ReplayOptions): Promise<ReplayTally> {
  const t = newTally(ruleSet);
  for (const file of files) {
    t.files.push(file);
    let line = 0;
    try {
      for await (const text of fileLines(file)) tallyLine(t, ruleSet, text, { file, line: ++line }, opts);
    } catch (err) {
      throw new Error(`${file}${line ? ` after line ${line}` : ''}: ${(err as Error).message}`, { cause: err });
    }
  }
  return t;
}
