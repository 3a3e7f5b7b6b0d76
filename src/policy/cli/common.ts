/**
 * What the policy commands share: argument parsing with a usage error (exit 2) instead of a
 * stack trace, `--help`, and loading a policy folder with its errors as file:line text.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { ConfigErrors } from '../../core/errors.ts';
import { loadPolicies } from '../load.ts';
import type { RuleSet } from '../types.ts';

/** Exit statuses of the CLI (DESIGN.md): 0 success, 1 the check failed, 2 usage or configuration error. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export class UsageError extends Error {}

/** Parses argv; throws UsageError naming the problem. `help: true` when --help/-h was given. */
export function parseCommand<T extends ParseArgsOptionsConfig>(argv: readonly string[], options: T): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[]; help: boolean } {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    const v = values as Record<string, string | boolean | string[] | undefined>;
    return { values: v, positionals, help: v.help === true };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Runs a command body, turning usage and configuration errors into their exit status. */
export async function runCommand(io: Io, help: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`postern: ${err.message}\n\n${help}`);
      return EXIT.usage;
    }
    if (err instanceof ConfigErrors) {
      io.err(`postern: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

/** The configuration (for the default policy folder and DNS): --config, $POSTERN_CONFIG, ./postern.yaml or the defaults. */
export function commandConfig(file: string | undefined): Config {
  return loadConfig({ file }).config;
}

export function loadRuleSet(dir: string): Promise<RuleSet> {
  return loadPolicies(dir);
}

export function stringOption(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A non-negative integer option, or the default. */
export function countOption(values: Record<string, unknown>, name: string, def: number): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return def;
  if (!/^\d{1,9}$/.test(raw)) throw new UsageError(`--${name}: expected a whole number, got "${raw}"`);
  return Number(raw);
}
