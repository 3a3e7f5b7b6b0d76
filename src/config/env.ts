/**
 * POSTERN_* environment variables over the file. A variable holds text; it is turned into the
 * value the file would hold (a list for list keys, a number for plain numeric text) and then
 * validated by the same schema as the file, so "99999" is refused as a port and "10MB" is a
 * size from either place. A POSTERN_* variable that names no key is an error, as an unknown
 * key in the file is: a misspelt POSTERN_DOMIANS must not be silently ignored.
 */
import { ConfigError } from '../core/errors.ts';
import { configLeaves, type ConfigLeaf } from './leaves.ts';
import { didYouMean } from './suggest.ts';

/** Variables that are not config keys. */
export const NON_KEY_VARIABLES: readonly string[] = ['POSTERN_CONFIG'];

export interface EnvValue {
  readonly leaf: ConfigLeaf;
  readonly value: unknown;
}

/** Text as the value the file would hold; the file's own quoted numbers go through here too. */
export function fromText(raw: string, leaf: ConfigLeaf): unknown {
  switch (leaf.kind) {
    case 'list': return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    // Plain numbers become numbers; text with a unit ("10MB", "30s") goes to the schema as it is.
    case 'number': return /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : raw;
    default: return raw; // booleans: the schema reads true/false, yes/no, on/off, 1/0
  }
}

/** The values set by the environment, and an error for every POSTERN_* variable that is no key. */
export function readEnvironment(env: NodeJS.ProcessEnv): { values: EnvValue[]; errors: ConfigError[] } {
  const leaves = configLeaves();
  const byName = new Map(leaves.map((l) => [l.env, l]));
  const values: EnvValue[] = [];
  const errors: ConfigError[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('POSTERN_') || raw === undefined || NON_KEY_VARIABLES.includes(name)) continue;
    const leaf = byName.get(name);
    if (leaf) values.push({ leaf, value: fromText(raw, leaf) });
    else errors.push(new ConfigError(`unknown environment variable, no config key has this name${didYouMean(name, [...byName.keys(), ...NON_KEY_VARIABLES])}`, { key: name }));
  }
  return { values, errors };
}
