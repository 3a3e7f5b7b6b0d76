/**
 * One validated rule (RuleSpec) → CompiledRule: precompiled conditions, its reason and its
 * verdict builder. Every problem is pushed as a located ConfigError; the rule is then null
 * and the whole load fails (all-or-nothing), but compiling goes on to report all problems.
 */
import type { ConfigError } from '../core/errors.ts';
import type { AuthResult } from '../core/facts.ts';
import type { Reason } from '../core/verdict.ts';
import * as cond from './conditions.ts';
import { deepFreeze } from './freeze.ts';
import { compileIpPatterns } from './ip.ts';
import { expandPatterns, listPath, type ListStore } from './lists.ts';
import { compileNamePatterns, type NameKind, type NameMatcher } from './names.ts';
import { countPredicate, parseDuration, type MatchSpec, type RuleSpec } from './schema.ts';
import type { CompiledMatch, CompiledRule, Condition, MatchKey, Mode } from './types.ts';
import { compileVerdict, type VerdictProblem } from './verdicts.ts';
import { errorAt, locate, type PathSegment, type YamlSource } from './yaml-source.ts';

export interface RuleContext {
  readonly source: YamlSource;
  /** Path of the rule in its file: ['rules', 3]. */
  readonly path: readonly PathSegment[];
  readonly fileMode: Mode;
  readonly dir: string;
  readonly lists: ListStore;
  readonly errors: ConfigError[];
}

const PATTERN_KEYS = ['ip', 'helo', 'ptr', 'sender_domain', 'from_domain', 'recipient', 'dkim_domain', 'arc_sealer'] as const;

/** Absolute paths of the list files a rule references, so they can be read before compiling. */
export function ruleListRefs(spec: RuleSpec, dir: string): string[] {
  const refs: string[] = [];
  for (const match of [spec.match, spec.match?.not]) {
    for (const key of PATTERN_KEYS) {
      for (const value of match?.[key] ?? []) {
        const abs = listPath(dir, value);
        if (abs !== null) refs.push(abs);
      }
    }
  }
  return refs;
}

function names(kind: NameKind, values: readonly string[], path: readonly PathSegment[], ctx: RuleContext): NameMatcher {
  const { patterns, wheres } = expandPatterns(values, path, ctx);
  return compileNamePatterns(kind, patterns, (i, problem) => {
    const where = wheres[i];
    if (where) ctx.errors.push(errorAt(where, problem));
  });
}

function compileMatch(spec: MatchSpec, path: readonly PathSegment[], ctx: RuleContext, not: MatchSpec | undefined): CompiledMatch {
  const c: Condition[] = [];
  const at = (key: string): PathSegment[] => [...path, key];
  if (spec.ip) {
    const { patterns, wheres } = expandPatterns(spec.ip, at('ip'), ctx);
    c.push(cond.ipCondition(compileIpPatterns(patterns, (i, problem) => {
      const where = wheres[i];
      if (where) ctx.errors.push(errorAt(where, problem));
    })));
  }
  if (spec.helo) c.push(cond.nameCondition('helo', names('helo', spec.helo, at('helo'), ctx)));
  if (spec.ptr) c.push(cond.nameCondition('ptr', names('domain', spec.ptr, at('ptr'), ctx)));
  if (spec.sender_domain) c.push(cond.nameCondition('sender_domain', names('domain', spec.sender_domain, at('sender_domain'), ctx)));
  if (spec.tier) c.push(cond.tierCondition(spec.tier));
  if (spec.spf) c.push(cond.resultCondition('spf', spec.spf));
  if (spec.from_domain) c.push(cond.nameCondition('from_domain', names('domain', spec.from_domain, at('from_domain'), ctx)));
  if (spec.recipient) c.push(cond.recipientCondition(names('recipient', spec.recipient, at('recipient'), ctx)));
  const results: Array<['dkim' | 'arc' | 'dmarc', readonly AuthResult[] | undefined]> = [['dkim', spec.dkim], ['arc', spec.arc], ['dmarc', spec.dmarc]];
  for (const [key, values] of results) if (values) c.push(cond.resultCondition(key, values));
  if (spec.dmarc_policy) c.push(cond.dmarcPolicyCondition(spec.dmarc_policy));
  if (spec.dkim_aligned !== undefined) c.push(cond.dkimAlignedCondition(spec.dkim_aligned));
  if (spec.dkim_domain) c.push(cond.dkimDomainCondition(names('domain', spec.dkim_domain, at('dkim_domain'), ctx)));
  if (spec.auth_temperror !== undefined) c.push(cond.authTemperrorCondition(spec.auth_temperror));
  if (spec.multiple_from !== undefined) c.push(cond.multipleFromCondition(spec.multiple_from));
  if (spec.from_count) c.push(cond.fromCountCondition(spec.from_count.map(countPredicate)));
  if (spec.first_seen_within !== undefined) {
    const seconds = parseDuration(spec.first_seen_within);
    if (seconds <= 0) ctx.errors.push(errorAt(locate(ctx.source, at('first_seen_within')), 'duration must be more than 0'));
    c.push(cond.firstSeenCondition(seconds));
  }
  if (spec.arc_chain) c.push(cond.arcChainCondition(spec.arc_chain));
  if (spec.arc_sealer) c.push(cond.arcSealerCondition(names('domain', spec.arc_sealer, at('arc_sealer'), ctx)));
  if (spec.arc_dmarc) c.push(cond.arcDmarcCondition(spec.arc_dmarc));
  let negated: CompiledMatch | null = null;
  if (not) {
    if (Object.values(not).every((v) => v === undefined)) ctx.errors.push(errorAt(locate(ctx.source, at('not')), '`not:` needs at least one match key'));
    negated = compileMatch(not, at('not'), ctx, undefined);
  }
  const mailOnly = c.every((x) => x.stage === 'mail') && (negated === null || negated.stage === 'mail');
  return { conditions: c, not: negated, stage: mailOnly ? 'mail' : 'data' };
}

function keysOf(match: CompiledMatch | null): MatchKey[] {
  return match ? match.conditions.map((c) => c.key) : [];
}

/**
 * Reason label of a rule from what it matches on. A rule about DNS trouble is about that
 * first; then DMARC, SPF, DKIM. Keys matched positively count before keys under `not:`
 * (`auth_temperror: true, not: { dmarc: pass }` is a temperror rule).
 */
function reasonFor(match: CompiledMatch): Reason {
  for (const keys of [new Set(keysOf(match)), new Set(keysOf(match.not))]) {
    if (keys.has('multiple_from')) return 'multiple-from';
    if (keys.has('from_count')) return 'from-count';
    if (keys.has('auth_temperror')) return 'auth-temperror';
    if (keys.has('dmarc') || keys.has('dmarc_policy')) return 'dmarc-policy';
    if (keys.has('spf')) return 'spf-fail';
    if (keys.has('dkim') || keys.has('dkim_aligned') || keys.has('dkim_domain')) return 'dkim-required';
  }
  return 'rule';
}

export function compileRule(spec: RuleSpec, ctx: RuleContext): CompiledRule | null {
  const before = ctx.errors.length;
  const { not, ...positive } = spec.match ?? {};
  const match = compileMatch(positive, [...ctx.path, 'match'], ctx, not);
  const reason = reasonFor(match);
  const problems: VerdictProblem[] = [];
  const verdict = compileVerdict(spec, reason, problems);
  for (const p of problems) ctx.errors.push(errorAt(locate(ctx.source, [...ctx.path, ...p.path.map((s) => (/^\d+$/.test(s) ? Number(s) : s))]), p.problem));
  if (ctx.errors.length > before || !verdict) return null;
  const mode = spec.mode ?? ctx.fileMode;
  const where = locate(ctx.source, ctx.path);
  return deepFreeze({
    name: spec.name,
    description: spec.description ?? '',
    file: ctx.source.file,
    line: where.line,
    mode,
    action: spec.action,
    reason,
    keys: [...keysOf(match), ...keysOf(match.not)],
    match,
    verdict,
    monitorAccept: { action: 'accept', rule: spec.name, reason: 'rule', detail: `monitor mode: would ${spec.action}` },
  });
}
