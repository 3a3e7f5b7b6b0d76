/**
 * Everything the gateway reads from disk when it starts: the policy set, the allow/block
 * lists and the STARTTLS certificate. `serve` (through createGateway) and `check-config` both
 * load them here, so a config check-config accepts is one serve can start with. Every problem
 * is collected (not only the first) as a ConfigError located at the key that named the file.
 */
import type { Location } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { loadPolicies } from '../policy/load.ts';
import type { RuleSet } from '../policy/types.ts';
import { loadLists, type Lists } from '../reputation/lists.ts';
import { loadTlsCredentials, TlsLoadError, type TlsCredentials } from '../tls/credentials.ts';

export interface StartupResources {
  readonly ruleSet: RuleSet;
  readonly lists: Lists;
  /** null when STARTTLS is not configured. */
  readonly tls: TlsCredentials | null;
}

/** Where a key was set; without a loaded file (tests, createGateway) just the key. */
export type Locator = (key: string) => Location;
const byKey: Locator = (key) => ({ key });

/**
 * A problem about a whole file or folder (cannot read it) is reported at the config key that
 * named it; problems inside a file keep their own file:line.
 */
function relocate(err: unknown, path: string, key: string, where: Locator): ConfigError[] {
  if (!(err instanceof ConfigErrors)) return [new ConfigError((err as Error).message, where(key))];
  return err.errors.map((e) => (e.file === path && e.line === undefined ? new ConfigError(`${e.problem} (${path})`, where(key)) : e));
}

/** Reads the STARTTLS certificate pair, or null; a TlsLoadError becomes a located ConfigError. */
export function loadTls(config: Config, where: Locator = byKey): TlsCredentials | null {
  const { cert, key } = config.tls;
  if (!cert || !key) return null;
  try {
    return loadTlsCredentials({ cert, key });
  } catch (err) {
    if (err instanceof TlsLoadError) throw new ConfigErrors([new ConfigError(err.message, where(err.key))]);
    throw err;
  }
}

export async function loadStartupResources(config: Config, where: Locator = byKey): Promise<StartupResources> {
  const errors: ConfigError[] = [];
  const ruleSet = await loadPolicies(config.policies).catch((err: unknown) => {
    errors.push(...relocate(err, config.policies, 'policies', where));
    return null;
  });
  let lists: Lists | null = null;
  try {
    lists = loadLists(config.lists);
  } catch (err) {
    // loadLists stops at the first list; say which key named the file that failed
    const key = err instanceof ConfigErrors && err.errors[0]?.file === config.lists.block ? 'lists.block' : 'lists.allow';
    errors.push(...relocate(err, (key === 'lists.block' ? config.lists.block : config.lists.allow) ?? '', key, where));
  }
  let tls: TlsCredentials | null = null;
  try {
    tls = loadTls(config, where);
  } catch (err) {
    errors.push(...relocate(err, '', 'tls.cert', where));
  }
  if (errors.length > 0 || !ruleSet || !lists) throw new ConfigErrors(errors);
  return { ruleSet, lists, tls };
}
