/**
 * The commands whose modules parse their own arguments and print their own help (DMARC
 * reports, policy tooling), as entries of the command table: each `run` returns the exit status.
 */
import { reportsCommand, HELP as REPORTS_HELP } from '../reports/cli.ts';
import { EXPLAIN_HELP, explainCommand } from '../policy/cli/explain.ts';
import { POLICY_HELP, policyCommand } from '../policy/cli/policy.ts';
import { REPLAY_HELP, replayCommand } from '../policy/cli/replay.ts';
import type { Command } from './command.ts';

// their help texts end with a newline; `postern help NAME` adds its own (as for the other commands)
const wrap = (name: string, synopsis: string, summary: string, help: string, run: (argv: string[]) => Promise<number>): Command =>
  ({ name, synopsis, summary, help: help.trimEnd(), run: (argv) => run([...argv]) });

export const reports = wrap('reports', 'reports aggregate [--out DIR] | reports send [--now] [--config FILE]',
  'DMARC aggregate reports: write the open period\'s XML, or send what is due', REPORTS_HELP, reportsCommand);
export const replay = wrap('replay', 'replay --policies DIR [--json] [--show N] [--top N] FILE...',
  'decide recorded decisions again under a candidate policy folder, print what changes', REPLAY_HELP, (argv) => replayCommand(argv));
export const policy = wrap('policy', 'policy test [DIR] | policy schema [--tests]',
  'run the policy tests (*.test.yaml) beside the policies; print the policy JSON Schema', POLICY_HELP, (argv) => policyCommand(argv));
export const explain = wrap('explain', 'explain FILE.eml --ip IP … | explain --record FILE [--session ID]',
  'each rule in order, why it matched or not, for a message or a recorded decision', EXPLAIN_HELP, (argv) => explainCommand(argv));
