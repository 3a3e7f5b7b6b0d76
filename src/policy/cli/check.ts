/**
 * What `check-config` checks for the policy tooling: the policy tests beside the policies
 * (*.test.yaml), and that `decisions.file` can be written (serve refuses to start otherwise).
 */
import type { Config } from '../../config/schema.ts';
import { checkDecisionsFile } from '../../observability/decision-file.ts';
import { testFolder, testReport, testsOk } from '../testing/run-folder.ts';
import type { RuleSet } from '../types.ts';

export async function policyToolingChecks(config: Config, ruleSet: RuleSet): Promise<{ ok: boolean; text: string }> {
  const decisions = checkDecisionsFile(config);
  const tests = await testFolder(config.policies, ruleSet);
  const text = [...decisions.map((e) => `invalid configuration: ${e.message}\n`), testReport(tests)].join('');
  return { ok: decisions.length === 0 && testsOk(tests), text };
}
