/**
 * What every CLI command module exports, and the pieces they share. A command is a name, a
 * one-line summary for `postern --help`, its own help text for `postern <command> --help`, and
 * `run(argv)`, which resolves with the exit status. src/main.ts keeps the table of commands.
 *
 * Exit status (README "CLI"): 0 success (for verify: delivered), 1 refused or failed (for
 * verify: reject), 2 a usage or configuration error, 3 for verify: tempfail.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { loadConfig, type LoadedConfig } from '../config/load.ts';

export const EXIT = { ok: 0, failed: 1, reject: 1, usage: 2, tempfail: 3 } as const;

export interface Command {
  readonly name: string;
  /** "check-config [--config FILE] [--print]": the synopsis in `postern --help`. */
  readonly synopsis: string;
  /** One line saying what it does. */
  readonly summary: string;
  /** The full text `postern <name> --help` prints. */
  readonly help: string;
  run(argv: readonly string[]): Promise<number>;
}

/** Wrong arguments: main prints the message and the command's help, exit 2. */
export class UsageError extends Error {
  readonly help: string;
  constructor(message: string, help: string) {
    super(message);
    this.name = 'UsageError';
    this.help = help;
  }
}

/** The option every command takes. */
export const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;

export const CONFIG_HELP = `  -c, --config FILE   the config file (else $POSTERN_CONFIG, else ./postern.yaml if present,
                      else the embedded defaults); POSTERN_* variables override its keys
  -h, --help          this text`;

/**
 * Parses a command's arguments; null when --help was asked for (the help is printed).
 * Unknown options and missing values are UsageErrors naming the command, and so are
 * arguments a command does not take (`positionals: false`, the default).
 */
export function parseCommandArgs<T extends ParseArgsOptionsConfig>(
  command: Pick<Command, 'name' | 'help'>, argv: readonly string[], options: T, opts: { positionals?: boolean } = {},
) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    // node's own text suggests quoting with `--`; the operator needs the command's options instead
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${command.name}: ${message}`, command.help);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(command.help + '\n');
    return null;
  }
  const [extra] = parsed.positionals;
  if (!opts.positionals && extra !== undefined) throw new UsageError(unexpectedArgument(command.name, extra), command.help);
  return parsed;
}

/**
 * `postern check-config /etc/postern/postern.yaml` must not check the embedded defaults and
 * say ok: an argument a command does not take is an error, and a file name gets the fix.
 */
function unexpectedArgument(name: string, arg: string): string {
  const fileLike = /[/\\]|\.(ya?ml|json)$/i.test(arg);
  return `${name} takes no argument "${arg}"${fileLike ? `: did you mean --config ${arg}?` : ' (the config file is given with --config FILE)'}`;
}

/** The configuration for a command: --config FILE or the usual search (ConfigErrors propagate: exit 2). */
export function loadCommandConfig(file: string | undefined): LoadedConfig {
  return loadConfig({ file });
}
