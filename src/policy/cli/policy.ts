/** `postern policy test [DIR]` and `postern policy schema`. */
import path from 'node:path';
import { policyFileJsonSchema, policyTestJsonSchema } from '../json-schema.ts';
import { testFolder, testReport, testsOk } from '../testing/run-folder.ts';
import { EXIT, UsageError, commandConfig, loadRuleSet, parseCommand, processIo, runCommand, stringOption, type Io } from './common.ts';

export const POLICY_HELP = `usage: postern policy test [DIR] [--config FILE]
       postern policy schema [--tests]

policy test   runs the policy tests (*.test.yaml) beside the policies in DIR (default: the
              configured policies folder) against those policies. Each file is a list of
              cases { name, facts, expect: { action, rule } } whose facts use the names of
              the rule match keys. Prints file:line of every failing case.
              Exit status: 0 all passed, 1 a case failed or a test file has an error,
              2 usage error or a broken policy.
policy schema prints the JSON Schema of policy files (policies/policy.schema.json), or with
              --tests the one of policy test files (policies/policy-test.schema.json).
`;

async function runTests(dir: string | undefined, config: string | undefined, io: Io): Promise<number> {
  const folder = path.resolve(dir ?? commandConfig(config).policies);
  const ruleSet = await loadRuleSet(folder);
  const result = await testFolder(folder, ruleSet);
  io.out(testReport(result));
  return testsOk(result) ? EXIT.ok : EXIT.failed;
}

export async function policyCommand(argv: string[], io: Io = processIo): Promise<number> {
  return runCommand(io, POLICY_HELP, async () => {
    const { values, positionals, help } = parseCommand(argv, { config: { type: 'string', short: 'c' }, tests: { type: 'boolean' } });
    const [sub, ...rest] = positionals;
    if (help || sub === 'help') {
      io.out(POLICY_HELP);
      return EXIT.ok;
    }
    switch (sub) {
      case 'test':
        if (rest.length > 1) throw new UsageError('policy test takes one folder');
        return runTests(rest[0], stringOption(values, 'config'), io);
      case 'schema':
        if (rest.length > 0) throw new UsageError(`policy schema takes no argument "${rest[0]}"`);
        io.out(JSON.stringify(values.tests === true ? policyTestJsonSchema() : policyFileJsonSchema(), null, 2) + '\n');
        return EXIT.ok;
      default:
        throw new UsageError(sub ? `unknown policy command "${sub}"` : 'policy needs a command: test or schema');
    }
  });
}
