/**
 * `postern check-config`: the start-up checks of `serve` (src/startup/preflight.ts) without
 * starting. Exit 0 means serve will start with this configuration (save a port another program
 * holds); every problem is one line naming the key and where it was set, exit 2.
 */
import type { LoadedConfig } from '../config/load.ts';
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

/**
 * Run as root, every file is readable and every folder writable: a certificate or list the
 * service user (systemd's User=postern) cannot read passes here and stops serve. One line
 * saying so, when the configuration names files.
 */
function rootNote(loaded: LoadedConfig): string | null {
  if (process.getuid?.() !== 0) return null;
  const { config } = loaded;
  const files = [
    config.tls.cert, config.tls.key, config.lists.allow, config.lists.block, config.decisions.file,
    config.reports.dmarc.signing.keyFile, loaded.policiesFrom === 'shipped' ? '' : config.policies,
  ].filter(Boolean);
  if (files.length === 0) return null;
  const file = loaded.file ? ` --config ${loaded.file}` : '';
  return `note: checked as root, who can read every file: a file the service user cannot read is not seen here; run it as that user too, e.g. sudo -u postern postern check-config${file}`;
}

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
    const note = rootNote(loaded);
    if (note) out.push(note);
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
