/**
 * The policy tests of a folder: every `*.test.yaml` beside the policies, run against the
 * policies of that folder, and the report `postern policy test` and `check-config` print.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import type { RuleSet } from '../types.ts';
import { isPolicyTestFileName, runPolicyTests, type TestRun } from './cases.ts';

export interface FolderTests extends TestRun {
  readonly files: readonly string[];
  readonly passed: number;
  readonly failed: number;
}

export async function testFolder(dir: string, ruleSet: RuleSet): Promise<FolderTests> {
  const names = (await readdir(dir)).filter(isPolicyTestFileName).sort();
  const files: Array<{ path: string; text: string }> = [];
  const readErrors: ConfigError[] = [];
  for (const name of names) {
    const path = join(dir, name);
    try {
      files.push({ path, text: await readFile(path, 'utf8') });
    } catch (err) {
      readErrors.push(new ConfigError(`cannot read policy test file: ${(err as Error).message}`, { file: path }));
    }
  }
  const run = runPolicyTests(files, ruleSet);
  const failed = run.outcomes.filter((o) => o.failure).length;
  return { ...run, errors: [...readErrors, ...run.errors], files: files.map((f) => f.path), passed: run.outcomes.length - failed, failed };
}

/** One line per failing case and per problem (file:line first), then the summary line. */
export function testReport(t: FolderTests): string {
  const lines: string[] = [];
  for (const w of t.warnings) lines.push(`${w.file ?? ''}: warning: ${w.problem}`);
  for (const e of t.errors) lines.push(`${e.message}`);
  for (const o of t.outcomes) if (o.failure) lines.push(`${o.file}:${o.line}: FAIL "${o.name}": ${o.failure}`);
  const files = t.files.length;
  if (files === 0) lines.push('policy tests: no *.test.yaml files');
  else lines.push(`policy tests: ${files} file(s), ${t.outcomes.length} case(s), ${t.passed} passed, ${t.failed} failed${t.errors.length ? `, ${t.errors.length} problem(s) in the test files` : ''}${t.warnings.length ? `, ${t.warnings.length} warning(s)` : ''}`);
  return lines.join('\n') + '\n';
}

export function testsOk(t: FolderTests): boolean {
  return t.failed === 0 && t.errors.length === 0;
}
