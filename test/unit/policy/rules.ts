/** Compile policy text inline for table-driven tests (list files resolve against the fixtures folder). */
import { join } from 'node:path';
import { compilePolicies } from '../../../src/policy/load.ts';
import type { RuleSet } from '../../../src/policy/types.ts';

export const FIXTURES = join(import.meta.dirname, '../../fixtures/policies');

export function ruleSet(text: string, dir = join(FIXTURES, 'valid/lists')): RuleSet {
  return compilePolicies([{ path: 'inline.yaml', text }], dir);
}

/** One reject rule named `r` with the given match (YAML flow mapping). */
export function oneRule(match: string, action = 'reject'): RuleSet {
  return ruleSet(`rules:\n  - name: r\n    match: ${match}\n    action: ${action}\n`);
}
