/**
 * `postern check-config`: the start-up checks of `serve` (src/startup/preflight.ts) without
 * starting. Exit 0 means serve will start with this configuration (save a port another program
 * holds); every problem is one line naming the key and where it was set, exit 2.
 */
import { printConfig } from '../config/print.ts';
import { describeRuleSet } from '../policy/load.ts';
import { policyToolingChecks } from '../policy/cli/check.ts';
import { checkReporting } from '../reports/index.ts';
import { preflight } from '../startup/preflight.ts';
import { CONFIG_HELP, CONFIG_OPTION, EXIT, loadCommandConfig, parseCommandArgs, type Command } from './command.ts';

const synopsis = 'check-config [--config FILE] [--print]';
const help = `usage: postern ${synopsis}

Validates what serve would load, without starting: the config file and POSTERN_* variables,
the policy folder and list files, the TLS certificate and key (read, parsed, matched), the
listen addresses and the Redis settings. Prints a summary and the policy rules in order.
Exit 0: serve starts with it; exit 2: each problem on its own line, as file:line:column: key:
problem (or POSTERN_VAR: problem).

  --print             print the effective configuration instead (file + environment +
                      defaults, as YAML, each value marked with its origin; passwords masked)
${CONFIG_HELP}`;

export const command: Command = {
  name: 'check-config',
  synopsis,
  summary: 'validate the config, policies, lists and TLS files as serve would, print a summary',
  help,
  async run(argv) {
    const args = parseCommandArgs(command, argv, { ...CONFIG_OPTION, print: { type: 'boolean' } });
    if (!args) return EXIT.ok;
    const loaded = loadCommandConfig(args.values.config);
    const { resources, warnings } = await preflight(loaded);
    if (args.values.print) {
      process.stdout.write(printConfig(loaded));
      return EXIT.ok;
    }
    const { config } = loaded;
    const out = [`config: ${loaded.file ?? '(embedded defaults)'}: ok`];
    out.push(`domains: ${config.domains.join(', ')}`);
    if (loaded.policiesFrom === 'shipped') out.push(`policies: none configured and no policies/ beside the config: the shipped default set is used`);
    if (resources.tls) out.push(`tls: ${resources.tls.subject}, valid until ${resources.tls.notAfter.toISOString()}`);
    out.push(describeRuleSet(resources.ruleSet));
    const reports = checkReporting(config);
    if (reports) out.push(reports);
    process.stdout.write(out.join('\n') + '\n');
    // worth reading, not failing: on stderr, so that the summary on stdout stays the summary
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    // the policy tests beside the policies, and decisions.file: a failing test is exit 1
    const tooling = await policyToolingChecks(config, resources.ruleSet);
    process.stdout.write(tooling.text);
    return tooling.ok ? EXIT.ok : EXIT.failed;
  },
};
