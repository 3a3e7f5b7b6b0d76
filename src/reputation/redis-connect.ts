/**
 * One ioredis client from the `redis` config: a single server, Sentinel or Cluster. Every
 * variant is tuned so that a dead or slow Redis never stalls the event loop: a command
 * timeout, no offline queue (commands fail at once while disconnected and the resilient store
 * answers locally), at most one retry per request, and endless background reconnects.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './config.ts';

export type RedisClient = Redis | Cluster;

export interface ConnectOverrides {
  /** Longest pause between reconnect attempts (tests shorten it). */
  readonly reconnectMaxMs?: number;
  /** Build the client without connecting (start-up checks: the options are checked, nothing is sent). */
  readonly lazyConnect?: boolean;
}

interface HostPort { host: string; port: number }

function hostPort(text: string, defaultPort: number): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new Error(`invalid host:port "${text}"`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defaultPort };
}

/** redis+sentinel://[user:pass@]h1:26379,h2:26379/mastername[/db] */
export function parseSentinelUrl(url: string): { sentinels: HostPort[]; name: string; db: number; username?: string; password?: string } {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]+)\/([^/]+)(?:\/(\d+))?\/?$/.exec(url);
  if (!m) throw new Error('invalid redis+sentinel:// URL (expected redis+sentinel://host:port,host:port/mastername[/db])');
  const [, user, pass, hosts = '', name = '', db] = m;
  return {
    sentinels: hosts.split(',').map((h) => hostPort(h, 26379)),
    name: decodeURIComponent(name),
    db: db ? Number(db) : 0,
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(pass ? { password: decodeURIComponent(pass) } : {}),
  };
}

export function connectRedis(cfg: RedisConfig, overrides: ConnectOverrides = {}): RedisClient {
  const reconnectMax = overrides.reconnectMaxMs ?? 2_000;
  const retryStrategy = (times: number): number => Math.min(times * 50, reconnectMax);
  const common: RedisOptions = {
    commandTimeout: cfg.commandTimeoutMs,
    connectTimeout: cfg.connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Concurrent commands for one node leave in one write: the per-subject scripts of a take
    // become one round trip on a single server and one per node on a cluster.
    enableAutoPipelining: true,
    retryStrategy,
    ...(overrides.lazyConnect ? { lazyConnect: true } : {}),
  };

  const url = cfg.url;
  if (cfg.cluster || cfg.nodes.length > 1) {
    const seeds = [...(url ? [url] : []), ...cfg.nodes.map((n) => hostPort(n, 6379))];
    if (seeds.length === 0) throw new Error('redis.cluster needs redis.url or redis.nodes');
    const parsed = url ? new URL(url) : null;
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      ...(overrides.lazyConnect ? { lazyConnect: true } : {}),
      scaleReads: 'master',
      clusterRetryStrategy: retryStrategy,
      slotsRefreshTimeout: cfg.connectTimeoutMs,
      redisOptions: {
        commandTimeout: cfg.commandTimeoutMs,
        connectTimeout: cfg.connectTimeoutMs,
        maxRetriesPerRequest: 1,
        ...(parsed?.username ? { username: decodeURIComponent(parsed.username) } : {}),
        ...(parsed?.password ? { password: decodeURIComponent(parsed.password) } : {}),
        ...(parsed?.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    };
    return new Cluster(seeds, clusterOptions);
  }

  if (url?.startsWith('redis+sentinel://') || cfg.sentinel.masterName) {
    const fromUrl = url?.startsWith('redis+sentinel://') ? parseSentinelUrl(url) : null;
    const sentinels = [...(fromUrl?.sentinels ?? []), ...cfg.sentinel.nodes.map((n) => hostPort(n, 26379))];
    const name = fromUrl?.name ?? cfg.sentinel.masterName;
    if (!name || sentinels.length === 0) throw new Error('Sentinel needs a master name and at least one sentinel');
    return new Redis({
      ...common,
      sentinels,
      name,
      db: fromUrl?.db ?? 0,
      ...(fromUrl?.username ? { username: fromUrl.username } : {}),
      ...(fromUrl?.password ? { password: fromUrl.password } : {}),
      sentinelRetryStrategy: retryStrategy,
    });
  }

  if (!url && cfg.nodes.length === 1) {
    return new Redis({ ...common, ...hostPort(cfg.nodes[0]!, 6379) });
  }
  if (!url) throw new Error('redis.url is not set');
  return new Redis(url, common);
}

/** Resolves once the client can take commands (with no offline queue, earlier commands fail). */
export function waitReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis not ready after ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
