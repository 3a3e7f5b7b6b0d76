/** `postern reputation show|reset TARGET`: a sender's score and buckets in the shared Redis. */
import { reputationCommand as runReputation } from '../devtools/reputation-cli.ts';
import { CONFIG_HELP, CONFIG_OPTION, EXIT, loadCommandConfig, parseCommandArgs, UsageError, type Command } from './command.ts';

const synopsis = 'reputation show|reset <ip|cidr|domain|address> [--config FILE]';
const help = `usage: postern ${synopsis}

Shows or clears a sender's score and rate-limit buckets in the Redis the gateways share
(redis.url). The in-memory store of a gateway without Redis cannot be read from outside.

  show TARGET         score, samples, tier and buckets of an IP and its network, a CIDR,
                      an authenticated domain, or a recipient address
  reset TARGET        delete them
${CONFIG_HELP}`;

export const command: Command = {
  name: 'reputation',
  synopsis,
  summary: 'show or clear a sender\'s score and rate buckets in Redis',
  help,
  async run(argv) {
    const args = parseCommandArgs(command, argv, { ...CONFIG_OPTION }, { positionals: true });
    if (!args) return EXIT.ok;
    const [action, target] = args.positionals;
    if (!action || !target || args.positionals.length > 2 || (action !== 'show' && action !== 'reset')) throw new UsageError('reputation needs show|reset and a target', help);
    const { config } = loadCommandConfig(args.values.config);
    process.stdout.write(await runReputation(config, action, target));
    return EXIT.ok;
  },
};
