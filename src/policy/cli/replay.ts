/** `postern replay --policies DIR [--json] [--show N [--changed-only]] [--top N] FILE...` */
import fs from 'node:fs';
import path from 'node:path';
import { replayFiles } from '../replay/replay.ts';
import { replayJson, replayText } from '../replay/report.ts';
import { EXIT, UsageError, countOption, loadRuleSet, parseCommand, processIo, runCommand, stringOption, type Io } from './common.ts';

export const REPLAY_HELP = `usage: postern replay --policies DIR [--json] [--show N [--changed-only]] [--top N] FILE...

Decides every recorded decision again under the candidate policy folder DIR and prints what
would change: current action → candidate action with counts, what each candidate rule
matches, and the From domains and client IPs whose outcome changes.

FILE is a pino log (lines other than decision records are ignored) or a decisions.file,
plain or gzip (.gz is recognised by its content). Files are streamed: memory stays flat.

  --policies DIR   the candidate policy folder (required)
  --json           one JSON object on stdout (totals, transitions, rules, top_changed)
  --show N         keep N example decisions per transition (default 0)
  --changed-only   examples only for the transitions whose action changes
  --top N          domains and IPs listed (default 10)

Exit status: 0 when every file was read, 2 for a usage error, an unreadable file or a broken policy.
`;

export async function replayCommand(argv: string[], io: Io = processIo): Promise<number> {
  return runCommand(io, REPLAY_HELP, async () => {
    const { values, positionals, help } = parseCommand(argv, {
      policies: { type: 'string' }, json: { type: 'boolean' }, show: { type: 'string' }, top: { type: 'string' }, 'changed-only': { type: 'boolean' },
    });
    if (help) {
      io.out(REPLAY_HELP);
      return EXIT.ok;
    }
    const dir = stringOption(values, 'policies');
    if (!dir) throw new UsageError('replay needs --policies DIR (the candidate policy folder)');
    if (positionals.length === 0) throw new UsageError('replay needs at least one log or decision file');
    const show = countOption(values, 'show', 0);
    const top = countOption(values, 'top', 10);
    if (values['changed-only'] === true && show === 0) throw new UsageError('--changed-only picks the examples of --show N: give both');
    for (const file of positionals) {
      if (!fs.existsSync(file)) throw new UsageError(`no such file: ${file}`);
    }
    const policies = path.resolve(dir);
    const ruleSet = await loadRuleSet(policies);
    let tally;
    try {
      tally = await replayFiles(positionals, ruleSet, { show, changedOnly: values['changed-only'] === true });
    } catch (err) {
      io.err(`postern: cannot read ${(err as Error).message}\n`);
      return EXIT.usage;
    }
    io.out(values.json === true ? JSON.stringify(replayJson(tally, policies, top)) + '\n' : replayText(tally, policies, top));
    return EXIT.ok;
  });
}
