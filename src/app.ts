/**
 * Composition root: createGateway(config, deps?) wires every component. No module-level
 * singletons, every seam injectable, so tests run several gateways in one process.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config/schema.ts';
import { parseHostPort } from './config/load.ts';
import { configChange } from './config/reload.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { ConfigErrors } from './core/errors.ts';
import { cidrSet } from './core/ip.ts';
import { formatReply } from './core/reply.ts';
import { checkSpf } from './auth/spf.ts';
import { authenticateMessage } from './auth/message.ts';
import { createResolver, mailauthResolver, type DnsResolver } from './dns/index.ts';
import { confirmedReverseCallback } from './dns/fcrdns.ts';
import { messageFingerprint } from './message/fingerprint.ts';
import { rewriteMessage } from './message/headers.ts';
import { LineEndingNormaliser } from './message/line-endings.ts';
import { HeaderGuard, type HeaderBreach } from './message/header-guard.ts';
import { buildReceived } from './message/received.ts';
import { createLogger } from './observability/logger.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { startHttp, type HttpEndpoint } from './observability/http.ts';
import type { PipelineDeps } from './pipeline/deps.ts';
import { createFirstSeen } from './pipeline/first-seen.ts';
import { createRecipientCache } from './pipeline/recipient-cache.ts';
import { domainSet } from './pipeline/recipient.ts';
import { decide } from './policy/decide.ts';
import { loadPolicies } from './policy/load.ts';
import type { RuleSet } from './policy/types.ts';
import { createBackend } from './relay/backend.ts';
import type { Backend } from './relay/backend.ts';
import { createListener, type Listener } from './smtp/listener.ts';
import { loadLists, type Lists } from './reputation/lists.ts';
import { createReputation } from './reputation/reputation.ts';
import { createStoreFromConfig, redisConfigured } from './reputation/store.ts';
import type { RateStore } from './reputation/types.ts';
import { createSmtpServers } from './smtp/server.ts';

export interface Deps {
  clock: Clock;
  logger: Logger;
  registry: Registry;
  resolver: DnsResolver;
  backend: Backend;
  /** The rate/reputation store (tests inject one to share it or to seed scores). */
  store: RateStore;
  /** Reads the configuration again for a reload (main.ts: the same file and environment). */
  reloadConfig: () => Config;
}

export interface Gateway {
  /** Binds SMTP and HTTP listeners; resolves with the bound ports (port 0 → ephemeral). */
  start(): Promise<{ smtp: Array<{ host: string; port: number }>; http: number | null }>;
  /**
   * SIGHUP: re-reads the config (through `reloadConfig`), the policy folder and the lists,
   * all or nothing; on any error the old ones stay (thrown, logged, counted).
   */
  reload(): Promise<void>;
  /** Stops accepting (new connections get 421), waits for in-flight transactions up to drainTimeoutMs, closes. */
  stop(): Promise<void>;
  /** Client connections holding a slot now (total, all addresses). */
  openConnections(): number;
  readonly metrics: Metrics;
  readonly registry: Registry;
  readonly logger: Logger;
}

export async function createGateway(config: Config, overrides: Partial<Deps> = {}): Promise<Gateway> {
  const clock = overrides.clock ?? systemClock;
  const logger = overrides.logger ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  const registry = overrides.registry ?? new Registry();
  const metrics = createMetrics(registry);
  const resolver = overrides.resolver ?? createResolver({
    servers: config.dns.servers.map((s) => parseHostPort(s, 53)),
    timeoutMs: config.dns.timeoutMs,
    attempts: config.dns.attempts,
    cacheSize: config.dns.cacheSize,
    maxTtlSeconds: config.dns.maxTtlSeconds,
    maxNegativeTtlSeconds: config.dns.maxNegativeTtlSeconds,
    clock,
    observer: {
      lookup: (type, outcome, seconds) => {
        metrics.dnsLookups.inc({ type, outcome });
        metrics.dnsLatency.observe({ type }, seconds);
      },
      cacheHit: (type) => metrics.dnsCacheHits.inc({ type }),
    },
  });
  const backend = overrides.backend ?? createBackend({
    host: config.backend.host,
    port: config.backend.port,
    hostname: config.hostname,
    tls: config.backend.tls,
    rejectUnauthorized: config.backend.rejectUnauthorized,
    xclient: config.backend.xclient,
    poolSize: config.backend.poolSize,
    idleTimeoutMs: config.backend.idleTimeoutMs,
    maxMessagesPerConnection: config.backend.maxMessagesPerConnection,
    maxRcptErrorsPerConnection: config.backend.maxRcptErrorsPerConnection,
    connectTimeoutMs: config.backend.connectTimeoutMs,
    commandTimeoutMs: config.backend.commandTimeoutMs,
    dataTimeoutMs: config.backend.dataTimeoutMs,
  }, {
    clock,
    observer: {
      relayLatency: (seconds, outcome) => metrics.relayLatency.observe({ outcome }, seconds),
      relayError: (kind) => metrics.relayErrors.inc({ kind }),
    },
  });

  // Both series exist from the start, so the first failed reload is an increase() Prometheus sees.
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  let ruleSet: RuleSet = await loadPolicies(config.policies).catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(ruleSet.rules.length);

  // Reputation and rate limits: memory on one node, Redis (behind a local fallback) when configured.
  let lists: Lists = loadLists(config.lists);
  const sharedStore = redisConfigured(config.redis);
  metrics.storeUp.set(1);
  const store = overrides.store ?? createStoreFromConfig(config, {
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
  const authDns = mailauthResolver(resolver);
  const firstSeen = createFirstSeen({ clock, ttlSeconds: config.auth.firstSeenTtlSeconds });
  const recipientCache = createRecipientCache({ clock, ttlSeconds: config.backend.recipientCacheSeconds });

  /** Everything a transaction reads from the configuration; rebuilt and swapped whole on reload. */
  const buildDeps = (config: Config): PipelineDeps => {
    const reputation = createReputation({
      store,
      config,
      lists: () => lists,
      scoreCacheMs: config.reputation.scoreCacheSeconds * 1000,
      observer: { limited: (limiter) => metrics.rateLimitHits.inc({ limiter }), tier: () => undefined },
    });
    const strict = config.auth.strict;
    return {
      config,
      reputation,
      domains: domainSet(config.domains),
      clock,
      logger,
      metrics,
      decide: (facts, stage) => decide(facts, ruleSet, stage),
      checkSpf: async ({ ip, helo, sender }) => {
        const spf = await checkSpf({ ip, helo, sender, hostname: config.hostname, resolver: authDns, strict, timeoutMs: config.auth.spfTimeoutMs });
        if (spf.deadlinePassed) metrics.messageLimits.inc({ limit: 'spf-deadline' });
        return spf;
      },
      authenticate: async ({ message, ip, sender, spf, withheldSignatures }) => {
        const auth = await authenticateMessage({
          message, ip, sender, spf: spf as Parameters<typeof authenticateMessage>[0]['spf'],
          hostname: config.hostname, resolver: authDns, strict, minBitLength: config.auth.minKeyBits,
          timeoutMs: config.auth.timeoutMs, maxArcSets: config.auth.maxArcSets,
          ...(withheldSignatures ? { withheldSignatures: { count: withheldSignatures, max: config.auth.maxDkimSignatures } } : {}),
        });
        for (const limit of auth.limits) metrics.messageLimits.inc({ limit });
        return auth;
      },
      openBackend: (client) => backend.open(client),
      dropConnection: (sessionId, reply) => listener.dropSession(sessionId, `${reply.code} ${formatReply(reply, sessionId)}`),
      recipientCache,
      firstSeen,
      message: {
        normaliser: () => new LineEndingNormaliser(),
        headerGuard: () => {
          const guard = new HeaderGuard({
            maxHeaderBytes: config.limits.maxHeaderBytes, maxFields: config.limits.maxHeaderFields,
            maxFieldLines: config.limits.maxHeaderFieldLines, maxLines: config.limits.maxHeaderLines,
            maxDkimSignatures: config.auth.maxDkimSignatures,
          });
          guard.once('breach', (breach: HeaderBreach) => metrics.messageLimits.inc({ limit: breach.limit }));
          return guard;
        },
        fingerprint: messageFingerprint,
        received: buildReceived,
        rewrite: rewriteMessage,
      },
    };
  };
  let running = config;
  let deps = buildDeps(config);

  let draining = false;
  const servers = createSmtpServers({ deps: () => deps, logger, reverse: confirmedReverseCallback(resolver), isDraining: () => draining,
    onSessionCount: (n) => metrics.sessionsInFlight.set(n),
    onSecure: (id, socket) => {
      metrics.tlsHandshakes.inc({ outcome: 'ok' });
      listener.adoptSocket(id, socket);
    },
    onSessionClosed: (id) => listener.sessionClosed(id),
  });
  const listener: Listener = createListener({
    listen: config.listen,
    proxyTrusted: cidrSet(config.proxyProtocol.trusted),
    xclientTrusted: cidrSet(config.xclient.trusted),
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
    ipv6PrefixLength: config.limits.ipv6PrefixLength,
    proxyHeaderTimeoutMs: 10_000,
    servers,
    logger,
    onRefused: (reason) => metrics.connections.inc({ outcome: 'refused', reason }),
    onConnectionCount: (n) => metrics.connectionsOpen.set(n),
  });
  // A failed handshake reaches us once per TLS socket event that reports it ('_tlsError', then
  // 'error' with the same object): counted and logged once.
  const seenErrors = new WeakSet<Error>();
  for (const s of [servers.plain, servers.xclient]) {
    s.on('connect', () => metrics.connections.inc({ outcome: 'accepted', reason: 'ok' }));
    // smtp-server re-emits socket and TLS errors of its sessions here; without a listener an
    // EventEmitter 'error' would end the process. A client's broken connection is its problem.
    s.on('error', (err: NodeJS.ErrnoException & { meta?: unknown }) => {
      if (seenErrors.has(err)) return;
      seenErrors.add(err);
      const tls = /TLS|SSL/i.test(`${err.code ?? ''} ${err.message}`);
      if (tls) metrics.tlsHandshakes.inc({ outcome: 'failed' });
      logger.info({ err: err.message, code: err.code }, tls ? 'TLS error on a client connection' : 'client connection error');
    });
  }
  let http: HttpEndpoint | null = null;

  /** SIGHUP: all or nothing, config, policies and lists load aside, then swap together. */
  const reloadNow = async (): Promise<void> => {
    // All or nothing: config, policies and lists load aside, then swap together.
    try {
      const change = configChange(running, overrides.reloadConfig?.() ?? running);
      const next = change.effective;
      const nextRules = await loadPolicies(next.policies);
      const nextLists = loadLists(next.lists);
      ruleSet = nextRules;
      lists = nextLists;
      running = next;
      deps = buildDeps(next);
      logger.level = next.log.level;
      metrics.policyReloads.inc({ outcome: 'ok' });
      metrics.policyRules.set(nextRules.rules.length);
      logger.info({ rules: nextRules.rules.length, applied: change.applied }, 'configuration and policies reloaded');
      if (change.needsRestart.length > 0) {
        logger.warn({ keys: change.needsRestart }, 'these settings changed but take effect only after a restart; their running values are kept');
      }
    } catch (err) {
      metrics.policyReloads.inc({ outcome: 'failed' });
      logger.error({ err: err instanceof ConfigErrors ? err.message : err }, 'reload failed (policy, list or config), keeping the previous one');
      throw err;
    }
  };
  let reloading: Promise<void> = Promise.resolve();

  return {
    metrics,
    registry,
    logger,
    openConnections: () => listener.connectionCount(),
    async start() {
      const smtp = await listener.start();
      if (config.metrics.listen) {
        http = await startHttp(config.metrics.listen, registry, () => [
          { name: 'policies', check: () => Promise.resolve(ruleSet.rules.length >= 0 ? { ok: true as const } : { ok: false as const, error: 'no policy' }) },
          { name: 'backend', check: () => backend.probe() },
          // Fail-open keeps taking mail with per-node limits: a Redis outage must not take every
          // node out of the balancer at once (readiness would stop all mail). Fail-closed cannot take mail.
          ...(sharedStore ? [{
            name: 'redis',
            check: () => {
              const health = store.health();
              if (health.ok || running.redis.failMode === 'closed') return Promise.resolve(health);
              return Promise.resolve({ ok: true as const, degraded: `${health.error} (failMode open: limits per node)` });
            },
          }] : []),
        ]);
      }
      logger.info({ smtp, http: http?.port ?? null, domains: config.domains, backend: `${config.backend.host}:${config.backend.port}`, policies: config.policies, rules: ruleSet.rules.length }, 'postern listening');
      return { smtp, http: http?.port ?? null };
    },
    reload() {
      // One reload at a time, in signal order: a later SIGHUP never loses to an earlier, slower one.
      reloading = reloading.catch(() => undefined).then(reloadNow);
      return reloading;
    },
    async stop() {
      draining = true;
      listener.drain();
      const deadline = clock.now() + config.shutdown.drainTimeoutMs;
      // Idle sessions are told to go now; busy ones may finish their transaction.
      const closeIdle = (): void => {
        for (const s of [servers.plain, servers.xclient]) for (const c of s.sessions()) if (!c.busy()) c.closeWith(421, '4.3.2 Service shutting down, please try again later');
      };
      closeIdle();
      while (servers.sessions.size > 0 && clock.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        closeIdle();
      }
      for (const s of [servers.plain, servers.xclient]) for (const c of s.sessions()) c.closeWith(421, '4.3.2 Service shutting down, please try again later');
      await listener.stop();
      await backend.close();
      if (!overrides.store) await store.close();
      resolver.close();
      await http?.close();
    },
  };
}
