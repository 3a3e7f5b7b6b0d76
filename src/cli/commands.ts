/**
 * The postern CLI: a table of commands, each in its own module under src/cli/ exporting
 * `command` (name, synopsis, summary, help, run(argv) → exit status). Add a command with one
 * line in COMMANDS. Modules load only when used, so `check-config` does not pay for the
 * gateway's libraries.
 * Errors end here as one line each, never a stack trace: a usage or configuration error exits
 * 2, anything else 1.
 */
import { EXIT, UsageError, type Command } from './command.ts';
import { ConfigErrors } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';

const COMMANDS: ReadonlyArray<{ readonly name: string; readonly load: () => Promise<{ command: Command }> }> = [
  { name: 'serve', load: () => import('./serve.ts') },
  { name: 'check-config', load: () => import('./check-config.ts') },
  { name: 'verify', load: () => import('./verify.ts') },
  { name: 'reputation', load: () => import('./reputation.ts') },
  { name: 'reports', load: async () => ({ command: (await import('./tooling.ts')).reports }) },
  { name: 'replay', load: async () => ({ command: (await import('./tooling.ts')).replay }) },
  { name: 'policy', load: async () => ({ command: (await import('./tooling.ts')).policy }) },
  { name: 'explain', load: async () => ({ command: (await import('./tooling.ts')).explain }) },
];

async function usage(): Promise<string> {
  const commands = await Promise.all(COMMANDS.map(async (c) => (await c.load()).command));
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'usage: postern <command> [options]        postern <command> --help        postern --version',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}\n  ${' '.repeat(width)}postern ${c.synopsis}`),
    '',
    'Exit status: 0 success (verify: delivered), 1 refused or failed (verify: reject),',
    '2 usage or configuration error, 3 verify: tempfail.',
    'The config file is --config, else $POSTERN_CONFIG, else ./postern.yaml if present, else the',
    'embedded defaults; every key can be overridden with POSTERN_* environment variables.',
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`postern ${VERSION} (node ${process.version})\n`);
    return EXIT.ok;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write((topic ? (await topic.load()).command.help : await usage()) + '\n');
    return EXIT.ok;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) throw new UsageError(`unknown command "${name}"`, await usage());
  return (await entry.load()).command.run(rest);
}

function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`postern: ${err.message}\n\n${err.help}\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigErrors) {
    process.stderr.write(`postern: invalid configuration:\n${err.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`postern: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failed;
}

// Writes to pipes and files are synchronous on Linux, so exiting at once loses no output.
void main(process.argv.slice(2)).catch(report).then((code) => process.exit(code));
