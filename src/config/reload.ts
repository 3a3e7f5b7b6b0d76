/**
 * What a SIGHUP may change in a running gateway. Keys that shape listeners, connections or
 * long-lived clients (sockets, pools, the Redis connection, the DNS cache) need a restart:
 * a reload keeps their running values and names them, so the configuration in force is
 * always one coherent set. Everything else (domains, message limits, auth, policies, lists,
 * rate limits and tiers, log level) takes effect from the next SMTP command on.
 */
import { configLeaves } from './leaves.ts';
import { deepFreeze } from './load.ts';
import type { Config } from './schema.ts';
import { getIn, setIn } from './key-path.ts';

const RESTART_ONLY = [
  'listen', 'workers', 'hostname', 'backend.host', 'backend.port', 'backend.tls', 'backend.rejectUnauthorized', 'backend.xclient',
  'backend.poolSize', 'backend.idleTimeoutMs', 'backend.maxMessagesPerConnection', 'backend.maxRcptErrorsPerConnection',
  'backend.connectTimeoutMs', 'backend.commandTimeoutMs', 'backend.dataTimeoutMs', 'dns', 'proxyProtocol', 'xclient',
  'redis', 'metrics', 'tls', 'limits.maxConnections', 'limits.maxConnectionsPerIp', 'limits.socketTimeoutMs',
  // read once at start: the SIZE smtp-server advertises and counts, the refusal cache
  'limits.maxMessageSize', 'limits.maxBytesInFlight', 'limits.maxBytesInFlightPerClient', 'limits.ipv6PrefixLength', 'backend.recipientCacheSeconds',
  'reputation.halfLifeHours', 'reputation.keyTtlDays', 'reputation.memoryMaxKeys', 'log.pretty', 'shutdown',
  // the report collector, store and scheduler are built once at start
  'reports',

  'decisions', // the file is opened at start
];

const needsRestart = (key: string): boolean => RESTART_ONLY.some((p) => key === p || key.startsWith(p + '.'));

export interface ConfigChange {
  /** The configuration to run with: the new one, with restart-only keys kept as they run. */
  readonly effective: Config;
  readonly applied: readonly string[];
  readonly needsRestart: readonly string[];
}

export function configChange(running: Config, next: Config): ConfigChange {
  const effective = structuredClone(next) as unknown as Record<string, unknown>;
  const applied: string[] = [];
  const restart: string[] = [];
  for (const leaf of configLeaves()) {
    const key = leaf.path.join('.');
    const before = getIn(running, leaf.path);
    const after = getIn(next, leaf.path);
    if (JSON.stringify(before) === JSON.stringify(after)) continue;
    if (needsRestart(key)) {
      restart.push(key);
      setIn(effective, leaf.path, structuredClone(before));
    } else {
      applied.push(key);
    }
  }
  return { effective: deepFreeze(effective as unknown as Config), applied, needsRestart: restart };
}
