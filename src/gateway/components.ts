/**
 * The long-lived parts of a gateway, built once from the configuration at start (their keys
 * are restart-only, config/reload.ts): the DNS resolver, the backend pool, the rate and
 * reputation store, the recipient refusal cache. Each can be injected instead (tests).
 */
import type { Logger } from 'pino';
import { createKeyMemo, type KeyMemo } from '../auth/dkim-keys.ts';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { createResolver, type DnsResolver } from '../dns/index.ts';
import type { DnsLookupOutcome, DnsServer } from '../dns/types.ts';
import type { Metrics } from '../observability/metrics.ts';
import { createByteBudget, type ByteBudget } from '../pipeline/byte-budget.ts';
import { createRecipientCache } from '../pipeline/recipient-cache.ts';
import type { RecipientCache } from '../pipeline/deps.ts';
import { createBackend, type Backend, type BackendOptions } from '../relay/backend.ts';
import { createStoreFromConfig } from '../reputation/store.ts';
import type { RateStore } from '../reputation/types.ts';

export interface Components {
  readonly resolver: DnsResolver;
  readonly backend: Backend;
  readonly store: RateStore;
  readonly recipientCache: RecipientCache;
  /** Message bytes in memory, all sessions together. */
  readonly budget: ByteBudget;
  /** Parsed DKIM/ARC keys, kept across messages and reloads (each DNS answer parsed once). */
  readonly dkimKeys: KeyMemo;
}

export interface ComponentSeams {
  readonly resolver?: DnsResolver;
  readonly backend?: Backend;
  readonly store?: RateStore;
}

export function createComponents(config: Config, ctx: {
  clock: Clock; logger: Logger; metrics: Metrics;
  /** The resolvers (dns.servers, or the system's) and the health watch fed by every lookup. */
  dnsServers: readonly DnsServer[]; observeDns: (outcome: DnsLookupOutcome) => void;
}, seams: ComponentSeams): Components {
  const { clock, logger, metrics } = ctx;
  const resolver = seams.resolver ?? createResolver({
    servers: [...ctx.dnsServers],
    timeoutMs: config.dns.timeoutMs,
    attempts: config.dns.attempts,
    cacheSize: config.dns.cacheSize,
    maxTtlSeconds: config.dns.maxTtlSeconds,
    maxNegativeTtlSeconds: config.dns.maxNegativeTtlSeconds,
    clock,
    observer: {
      lookup: (type, outcome, seconds) => {
        ctx.observeDns(outcome);
        metrics.dnsLookups.inc({ type, outcome });
        metrics.dnsLatency.observe({ type }, seconds);
      },
      cacheHit: (type) => metrics.dnsCacheHits.inc({ type }),
    },
  });
  const backend = seams.backend ?? createBackend(backendOptions(config), {
    clock,
    observer: {
      relayLatency: (seconds, outcome) => metrics.relayLatency.observe({ outcome }, seconds),
      relayError: (kind) => metrics.relayErrors.inc({ kind }),
    },
  });
  metrics.storeUp.set(1);
  const store = seams.store ?? createStoreFromConfig(config, {
    observer: {
      storeError: (op) => metrics.storeErrors.inc({ op }),
      storeLatency: (op, seconds) => metrics.storeLatency.observe({ op }, seconds),
    },
    onHealthChange: (health) => {
      metrics.storeUp.set(health.ok ? 1 : 0);
      if (health.ok) logger.info('rate/reputation store (Redis) reachable again');
      else logger.warn({ error: health.error, failMode: config.redis.failMode }, config.redis.failMode === 'open'
        ? 'rate/reputation store (Redis) unreachable, limits enforced per node from memory'
        : 'rate/reputation store (Redis) unreachable, refusing with 4xx until it is back (failMode closed)');
    },
  });
  const recipientCache = createRecipientCache({ clock, ttlSeconds: config.backend.recipientCacheSeconds });
  const { maxBytesInFlight: max, maxBytesInFlightPerClient: perClient, ipv6PrefixLength } = config.limits;
  const budget = createByteBudget({ max, perClient, ipv6PrefixLength }, (n) => metrics.inflightBytes.set(n));
  return { resolver, backend, store, recipientCache, budget, dkimKeys: createKeyMemo() };
}

/** The backend connection settings as the relay takes them (also for a one-off probe at start). */
export function backendOptions(config: Config): BackendOptions {
  const b = config.backend;
  return {
    host: b.host, port: b.port, hostname: config.hostname, tls: b.tls, rejectUnauthorized: b.rejectUnauthorized, xclient: b.xclient,
    poolSize: b.poolSize, idleTimeoutMs: b.idleTimeoutMs, maxMessagesPerConnection: b.maxMessagesPerConnection,
    maxRcptErrorsPerConnection: b.maxRcptErrorsPerConnection, connectTimeoutMs: b.connectTimeoutMs,
    commandTimeoutMs: b.commandTimeoutMs, dataTimeoutMs: b.dataTimeoutMs,
  };
}
