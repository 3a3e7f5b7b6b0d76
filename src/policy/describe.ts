/** A summary of a loaded RuleSet for `postern check-config` / `check-policy` and the reload log line. */
import type { Action, Reason } from '../core/verdict.ts';
import type { MatchKey, Mode, RuleSet, Stage } from './types.ts';

export interface RuleSummary {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly action: Action;
  readonly mode: Mode;
  readonly reason: Reason;
  readonly keys: readonly MatchKey[];
  /** Keys under `not:`. */
  readonly negatedKeys: readonly MatchKey[];
  /** 'mail' when the rule can be decided at MAIL FROM (it matches on mail-stage facts only). */
  readonly stage: Stage;
  /**
   * True when this rule refuses and can do so at MAIL FROM: it is enforced, mail-stage, and
   * no earlier rule needs message facts (such a rule defers the decision to DATA).
   */
  readonly refusesAtMailFrom: boolean;
}

export interface RuleSetSummary {
  readonly dir: string;
  readonly files: ReadonlyArray<{ readonly path: string; readonly mode: Mode; readonly rules: number }>;
  readonly ruleCount: number;
  readonly monitorCount: number;
  readonly rules: readonly RuleSummary[];
}

export function summarizeRuleSet(ruleSet: RuleSet): RuleSetSummary {
  let dataRuleSeen = false;
  const rules = ruleSet.rules.map((r): RuleSummary => {
    const refuses = r.mode === 'enforce' && (r.action === 'reject' || r.action === 'tempfail');
    const summary: RuleSummary = {
      name: r.name, file: r.file, line: r.line, action: r.action, mode: r.mode, reason: r.reason,
      keys: r.match.conditions.map((c) => c.key), negatedKeys: r.match.not?.conditions.map((c) => c.key) ?? [],
      stage: r.match.stage, refusesAtMailFrom: refuses && r.match.stage === 'mail' && !dataRuleSeen,
    };
    if (r.match.stage === 'data') dataRuleSeen = true;
    return summary;
  });
  return {
    dir: ruleSet.dir,
    files: ruleSet.files.map((f) => ({ path: f.path, mode: f.mode, rules: f.rules })),
    ruleCount: rules.length,
    monitorCount: rules.filter((r) => r.mode === 'monitor').length,
    rules,
  };
}

/** Human-readable text for check-config: one line per file, one per rule in evaluation order. */
export function describeRuleSet(ruleSet: RuleSet): string {
  const summary = summarizeRuleSet(ruleSet);
  const lines = [`policies: ${summary.dir}: ${summary.files.length} file(s), ${summary.ruleCount} rule(s), ${summary.monitorCount} in monitor mode`];
  for (const f of summary.files) lines.push(`  ${f.path}: ${f.rules} rule(s)${f.mode === 'monitor' ? ' [monitor]' : ''}`);
  summary.rules.forEach((r, i) => {
    const flags = [r.mode === 'monitor' ? 'monitor' : '', r.refusesAtMailFrom ? 'at MAIL FROM' : ''].filter(Boolean).join(', ');
    const keys = [...r.keys, ...r.negatedKeys.map((k) => `not ${k}`)].join(', ') || 'any';
    lines.push(`  ${i + 1}. ${r.name} → ${r.action} (${keys})${flags ? ` [${flags}]` : ''}  ${r.file}:${r.line}`);
  });
  return lines.join('\n');
}
