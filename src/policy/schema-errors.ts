/**
 * zod issues → located ConfigErrors: "00-x.yaml:7:9: rules[1].match.spff: unknown key …".
 * Unknown keys point at the key itself and suggest the nearest allowed key.
 */
import type { z } from 'zod';
import type { ConfigError } from '../core/errors.ts';
import { MATCH_KEYS } from './types.ts';
import { errorAt, locate, type PathSegment, type YamlSource } from './yaml-source.ts';

const RULE_KEYS = ['name', 'description', 'match', 'action', 'reply', 'headers', 'mailbox', 'mode'];

/** The keys allowed in the mapping at `path`, for the "unknown key" message. */
function allowedKeys(path: readonly PathSegment[]): readonly string[] {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (path.length === 0) return ['mode', 'rules'];
  if (path.length === 2 && parent === 'rules') return RULE_KEYS;
  if (last === 'match') return [...MATCH_KEYS, 'not'];
  if (last === 'not') return MATCH_KEYS;
  if (last === 'reply') return ['code', 'enhanced', 'text'];
  if (parent === 'headers') return ['name', 'value'];
  return [];
}

/** Levenshtein distance, for "did you mean" on a mistyped key. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * Names that differ between a rule and a test case, too far apart for the edit distance: a
 * rule matches `first_seen_within: 1h`, a case gives the fact `first_seen: 30m`.
 */
const COUNTERPARTS: Readonly<Record<string, string>> = { first_seen_within: 'first_seen', first_seen: 'first_seen_within' };

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const counterpart = COUNTERPARTS[key];
  const near = counterpart !== undefined && allowed.includes(counterpart)
    ? { k: counterpart }
    : allowed.map((k) => ({ k, d: distance(key, k) })).filter((x) => x.d <= 2).sort((x, y) => x.d - y.d)[0];
  const hint = near ? `; did you mean "${near.k}"?` : '';
  return `unknown key "${key}"${hint}${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`;
}

export function issuesToErrors(
  source: YamlSource, base: readonly PathSegment[], issues: readonly z.core.$ZodIssue[],
  allowed: (path: readonly PathSegment[]) => readonly string[] = allowedKeys,
): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const issue of issues) {
    const path: PathSegment[] = [...base, ...issue.path.filter((s): s is PathSegment => typeof s !== 'symbol')];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) errors.push(errorAt(locate(source, [...path, key], 'key'), unknownKeyMessage(key, allowed(path))));
      continue;
    }
    const where = locate(source, path);
    errors.push(errorAt(where, where.found ? issue.message : 'required key is missing'));
  }
  return errors;
}
