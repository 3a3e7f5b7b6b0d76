/**
 * The checks `serve` makes before it starts, and `check-config` makes instead of starting:
 * the one place that decides whether a configuration can run. The property the tests hold it
 * to: every configuration `serve` refuses, `check-config` refuses, naming the key and where it
 * was set (file:line or the POSTERN_* variable).
 *
 * What it cannot know in advance is left to serve's own one-line errors: a port another
 * program holds, a privilege the service manager grants (CAP_NET_BIND_SERVICE).
 */
import os from 'node:os';
import { isIP } from 'node:net';
import type { LoadedConfig, Location } from '../config/load.ts';
import { splitHostPort } from '../config/values.ts';
import type { Config } from '../config/schema.ts';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { connectRedis } from '../reputation/redis-connect.ts';
import { redisConfigured } from '../reputation/store.ts';
import { expiryWarning } from '../tls/credentials.ts';
import { checkDecisionsFile } from '../observability/decision-file.ts';
import { workerShare } from '../pipeline/byte-budget.ts';
import { checkReporting, reportingWarnings } from '../reports/index.ts';
import { backendLoopProblems } from './backend-loop.ts';
import { loadStartupResources, type StartupResources } from './resources.ts';

export interface Preflight {
  readonly resources: StartupResources;
  /** Things worth a warning line that do not stop the start. */
  readonly warnings: readonly string[];
}

type Where = (key: string) => Location;

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Addresses this host has (and the wildcards): a listener on any other address cannot bind. */
function localAddresses(): Set<string> {
  const out = new Set<string>(WILDCARDS);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address.replace(/%.*$/, ''));
  return out;
}

/** Listeners that would collide: the same port on the same address, or under a wildcard of the same family. */
function listenProblems(config: Config, where: Where): ConfigError[] {
  const entries = [
    ...config.listen.map((text, i) => ({ text, key: config.listen.length > 1 ? `listen.${i}` : 'listen' })),
    ...(config.metrics.listen ? [{ text: config.metrics.listen, key: 'metrics.listen' }] : []),
  ];
  const local = localAddresses();
  const errors: ConfigError[] = [];
  const seen: Array<{ host: string; port: number; text: string }> = [];
  for (const { text, key } of entries) {
    const parsed = splitHostPort(text);
    if (!parsed.ok) continue; // the schema has said why
    const { host, port } = parsed;
    const location = where(key);
    if (!local.has(host)) errors.push(new ConfigError(`${text}: ${host} is not an address of this host (use 0.0.0.0, [::] or one of its addresses)`, location));
    const clash = seen.find((s) => port !== 0 && s.port === port && isIP(s.host) === isIP(host)
      && (s.host === host || WILDCARDS.has(s.host) || WILDCARDS.has(host)));
    if (clash) errors.push(new ConfigError(`${text} collides with ${clash.text}: both cannot listen on port ${port} (remove one; 0.0.0.0 and [::] cover every address of their family)`, location));
    seen.push({ host, port, text });
  }
  return errors;
}

/** The Redis client is built (not connected) as serve builds it: its own option checks run. */
function redisProblems(config: Config, where: Where): ConfigError[] {
  if (!redisConfigured(config.redis)) return [];
  try {
    connectRedis(config.redis, { lazyConnect: true }).disconnect();
    return [];
  } catch (err) {
    return [new ConfigError((err as Error).message, where(config.redis.url ? 'redis.url' : 'redis'))];
  }
}

/**
 * DMARC reporting as serve builds it: the signing key read and parsed, the state folder
 * writable. Its errors name only the key: located here at the file:line that set it.
 */
function reportingProblems(config: Config, where: Where): ConfigError[] {
  try {
    checkReporting(config);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    return err.errors.map((e) => (e.file === undefined && e.key !== undefined ? new ConfigError(e.problem, where(e.key)) : e));
  }
}

/**
 * The checks of the configuration itself, short of reading the files it names (policies,
 * lists, TLS: resources.ts) and of binding a port. A SIGHUP reload makes them too (serve's
 * reloadConfig): a file serve would refuse at its next start is refused at reload as well,
 * and the running configuration stays.
 */
export function configProblems(config: Config, where: Where): ConfigError[] {
  const errors: ConfigError[] = [];
  if (config.domains.length === 0) {
    errors.push(new ConfigError('no recipient domains configured: set `domains` in the config file or POSTERN_DOMAINS=example.com (Postern refuses to run as an open relay)', where('domains')));
  }
  errors.push(...listenProblems(config, where), ...backendLoopProblems(config, where, localAddresses()), ...redisProblems(config, where),
    ...checkDecisionsFile(config, where), ...reportingProblems(config, where));
  return errors;
}

/** A configuration read again for a reload, or ConfigErrors naming file:line as check-config does. */
export function checkedForReload(loaded: LoadedConfig): Config {
  const errors = configProblems(loaded.config, loaded.where);
  if (errors.length > 0) throw new ConfigErrors(errors);
  return loaded.config;
}

export async function preflight(loaded: LoadedConfig, now = Date.now()): Promise<Preflight> {
  const { config, where } = loaded;
  const errors = configProblems(config, where);
  let resources: StartupResources | null = null;
  try {
    resources = await loadStartupResources(config, where);
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    errors.push(...err.errors);
  }
  if (errors.length > 0 || !resources) throw new ConfigErrors(errors);
  const warnings: string[] = [...budgetWarnings(config)];
  const expiry = resources.tls ? expiryWarning(resources.tls, now) : null;
  if (expiry) warnings.push(`tls.cert: ${expiry}`);
  warnings.push(...reportingWarnings(config));
  return { resources, warnings };
}

/**
 * An in-flight budget that cannot hold one message of limits.maxMessageSize: with workers each
 * holds one anyway (so the node holds more than the total: pipeline/byte-budget.ts
 * workerShare); in one process, or per client, such a message would be deferred every time.
 */
export function budgetWarnings(config: Config): string[] {
  const { maxBytesInFlight: total, maxBytesInFlightPerClient: perClient, maxMessageSize: largest } = config.limits;
  const n = config.workers;
  const out: string[] = [];
  if (n > 1 && Math.floor(total / n) < largest) {
    const share = workerShare(config.limits, n).maxBytesInFlight;
    out.push(`limits.maxBytesInFlight: ${total} bytes over ${n} workers is less than limits.maxMessageSize (${largest}) each: each worker holds ${share}, so the node may hold up to ${n * share} bytes of messages (raise limits.maxBytesInFlight to ${n * largest} or lower workers)`);
  } else if (n === 1 && total < largest) {
    out.push(`limits.maxBytesInFlight (${total}) is less than limits.maxMessageSize (${largest}): a larger message is deferred with 452 4.3.1 every time`);
  }
  if (perClient < largest) {
    out.push(`limits.maxBytesInFlightPerClient (${perClient}) is less than limits.maxMessageSize (${largest}): a client's larger message is deferred with 452 4.3.1 every time`);
  }
  return out;
}
