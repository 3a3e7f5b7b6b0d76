/**
 * What `postern replay` prints: a table for people, or one JSON object (`--json`, shape v1,
 * documented in README.md "Replay a candidate policy") for scripts and outside checks.
 */
import { ACTIONS, type Action } from '../../core/verdict.ts';
import { factLine } from '../fact-view.ts';

/** The facts an example line shows: who sent it and how it authenticated. */
const SHORT_KEYS = ['ip', 'sender', 'from_domain', 'spf', 'dkim', 'dmarc', 'dmarc_policy', 'arc_sealer', 'tier'] as const;
import type { Example, ReplayTally, Transition } from './replay.ts';

const ORDER = new Map<Action | null, number>([...ACTIONS.map((a, i) => [a, i] as const), [null, ACTIONS.length]]);

function sortedTransitions(t: ReplayTally): Transition[] {
  return [...t.transitions.values()].sort((a, b) => (ORDER.get(a.from) ?? 0) - (ORDER.get(b.from) ?? 0) || (ORDER.get(a.to) ?? 0) - (ORDER.get(b.to) ?? 0));
}

export function replayJson(t: ReplayTally, policies: string, top: number): object {
  return {
    v: 1,
    policies,
    files: t.files,
    totals: {
      lines: t.lines,
      ignored_lines: t.ignored,
      records: t.records,
      skipped: { not_v1: t.skipped['not-v1'], no_verdict: t.skipped['no-verdict'], malformed: t.skipped.malformed },
      redecided: t.redecided,
      changed: t.changed,
      unchanged: t.redecided - t.changed - t.undecidable,
      undecidable: t.undecidable,
    },
    transitions: sortedTransitions(t).map((tr) => ({
      from: tr.from, to: tr.to, count: tr.count, changed: tr.to !== null && tr.to !== tr.from,
      ...(tr.examples.length > 0 ? { examples: tr.examples } : {}),
    })),
    rules: [...t.rules.values()].map((r) => ({ rule: r.rule, action: r.action, mode: r.mode, matched: r.matched, changed: r.changed })),
    top_changed: { domains: t.changedDomains.top(top), ips: t.changedIps.top(top), max_error: Math.max(t.changedDomains.maxError, t.changedIps.maxError) },
  };
}

const n = (x: number): string => x.toLocaleString('en-US');

/** Columns padded to their widest cell; the `right` ones (counts) right-aligned. */
function pad(cells: readonly string[][], right: readonly number[] = []): string[] {
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length))) ?? [];
  return cells.map((row) => row.map((c, i) => (right.includes(i) ? c.padStart(widths[i] ?? 0) : i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

function exampleLines(e: Example): string[] {
  const now = `${e.current.action}${e.current.rule ? ` (${e.current.rule})` : ''}`;
  const then = e.candidate ? `${e.candidate.action}${e.candidate.rule ? ` (${e.candidate.rule})` : ''}` : 'decided at DATA (not recorded)';
  return [`    ${e.file}:${e.line}${e.session ? ` session ${e.session}` : ''}${e.time ? ` ${e.time}` : ''}: ${now} → ${then}`, `      ${factLine(e.facts, SHORT_KEYS)}`];
}

export function replayText(t: ReplayTally, policies: string, top: number): string {
  const out: string[] = [];
  const skipped = t.skipped['not-v1'] + t.skipped['no-verdict'] + t.skipped.malformed;
  out.push(`replay: ${n(t.redecided)} decision(s) from ${t.files.length} file(s) decided again under ${policies}`);
  out.push(`  ${n(t.lines)} line(s) read, ${n(t.ignored)} not decision records, ${n(skipped)} record(s) skipped`
    + (skipped ? ` (not version 1: ${n(t.skipped['not-v1'])}, no policy verdict: ${n(t.skipped['no-verdict'])}, malformed: ${n(t.skipped.malformed)})` : ''));
  out.push('');
  const rows = [['current', '→', 'candidate', 'messages', '']];
  for (const tr of sortedTransitions(t)) {
    rows.push([tr.from, '→', tr.to ?? '(at DATA)', n(tr.count), tr.to === null ? 'unknown: refused at MAIL FROM now' : tr.to !== tr.from ? 'changed' : '']);
  }
  out.push(...pad(rows, [3]));
  const pct = t.redecided ? ((100 * t.changed) / t.redecided).toFixed(2) : '0.00';
  out.push('', `changed: ${n(t.changed)} of ${n(t.redecided)} (${pct}%)${t.undecidable ? `; ${n(t.undecidable)} would wait for the message (refused at MAIL FROM now)` : ''}`);
  out.push('', 'candidate rules, in order:');
  const ruleRows = [['rule', 'action', 'matched', 'changed']];
  for (const r of t.rules.values()) {
    ruleRows.push([r.rule || '(no rule: default)', r.mode === 'monitor' ? `accept (monitor: would ${r.action})` : r.action, n(r.matched), n(r.changed)]);
  }
  out.push(...pad(ruleRows, [2, 3]).map((l) => `  ${l}`));
  for (const [title, list] of [['From (else sender) domains', t.changedDomains.top(top)], ['client IPs', t.changedIps.top(top)]] as const) {
    if (list.length === 0) continue;
    out.push('', `top ${title} whose outcome changes:`);
    out.push(...pad(list.map((x) => [x.value, n(x.count)]), [1]).map((l) => `  ${l}`));
  }
  const err = Math.max(t.changedDomains.maxError, t.changedIps.maxError);
  if (err > 0) out.push(`  (counts above are approximate: each may be over by at most ${n(err)})`);
  const withExamples = sortedTransitions(t).filter((tr) => tr.examples.length > 0);
  for (const tr of withExamples) {
    out.push('', `examples ${tr.from} → ${tr.to ?? '(at DATA)'}:`);
    for (const e of tr.examples) out.push(...exampleLines(e));
  }
  return out.join('\n') + '\n';
}
