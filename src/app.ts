/**
 * Composition root: createGateway(config, deps?) wires every component. No module-level
 * singletons, every seam injectable, so tests run several gateways in one process. The parts
 * live in src/gateway/: components (built once), the pipeline's dependencies (rebuilt on
 * reload), reload, readiness and drain.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config/schema.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { cidrSet } from './core/ip.ts';
import type { DnsResolver } from './dns/index.ts';
import { confirmedReverseCallback } from './dns/fcrdns.ts';
import { createLogger } from './observability/logger.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { startHttp, type HttpEndpoint } from './observability/http.ts';
import { loadPolicies } from './policy/load.ts';
import type { RuleSet } from './policy/types.ts';
import type { Backend } from './relay/backend.ts';
import { loadLists, type Lists } from './reputation/lists.ts';
import { redisConfigured } from './reputation/store.ts';
import type { RateStore } from './reputation/types.ts';
import { createListener } from './smtp/listener.ts';
import { createSmtpServers } from './smtp/server.ts';
import { createComponents } from './gateway/components.ts';
import { drain, sessionCount, type Wait } from './gateway/drain.ts';
import { buildPipelineDeps } from './gateway/pipeline-deps.ts';
import { readinessChecks } from './gateway/readiness.ts';
import { createReloader } from './gateway/reload.ts';
import { watchClientErrors } from './gateway/client-errors.ts';

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
  /** The real-time wait of the drain deadline. */
  wait: Wait;
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
  const components = createComponents(config, { clock, logger, metrics }, overrides);

  // Both series exist from the start, so the first failed reload is an increase() Prometheus sees.
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  let ruleSet: RuleSet = await loadPolicies(config.policies).catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(ruleSet.rules.length);
  let lists: Lists = loadLists(config.lists);
  let running = config;
  const pipelineContext = {
    clock, logger, metrics, components, ruleSet: () => ruleSet, lists: () => lists,
    dropSession: (id: string, line: string) => listener.dropSession(id, line),
  };
  let deps = buildPipelineDeps(config, pipelineContext);

  let draining = false;
  const count = sessionCount((n) => metrics.sessionsInFlight.set(n));
  const servers = createSmtpServers({
    deps: () => deps, logger, hostname: config.hostname, maxMessageSize: config.limits.maxMessageSize,
    socketTimeoutMs: config.limits.socketTimeoutMs, closeTimeoutMs: config.shutdown.drainTimeoutMs, tls: readTls(config),
    reverse: confirmedReverseCallback(components.resolver), isDraining: () => draining, onSessionCount: (n) => count.set(n),
    onSecure: (id, socket) => {
      metrics.tlsHandshakes.inc({ outcome: 'ok' });
      listener.adoptSocket(id, socket);
    },
    onSessionClosed: (id) => listener.sessionClosed(id),
  });
  const listener = createListener({
    listen: config.listen,
    proxyTrusted: cidrSet(config.proxyProtocol.trusted),
    xclientTrusted: cidrSet(config.xclient.trusted),
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
    proxyHeaderTimeoutMs: 10_000,
    servers,
    logger,
    onRefused: (reason) => metrics.connections.inc({ outcome: 'refused', reason }),
    onConnectionCount: (n) => metrics.connectionsOpen.set(n),
  });
  watchClientErrors(servers, metrics, logger);

  const reload = createReloader({
    running: () => running,
    readConfig: () => overrides.reloadConfig?.() ?? running,
    loadPolicies,
    loadLists,
    apply: (next) => {
      ruleSet = next.ruleSet;
      lists = next.lists;
      running = next.config;
      deps = buildPipelineDeps(next.config, pipelineContext);
      logger.level = next.config.log.level;
    },
    logger,
    metrics,
  });
  let http: HttpEndpoint | null = null;

  return {
    metrics,
    registry,
    logger,
    openConnections: () => listener.connectionCount(),
    reload,
    async start() {
      const smtp = await listener.start();
      if (config.metrics.listen) {
        const checks = readinessChecks({
          rules: () => ruleSet.rules.length,
          backend: components.backend,
          sharedStore: redisConfigured(config.redis) ? { store: components.store, failMode: () => running.redis.failMode } : null,
        });
        http = await startHttp(config.metrics.listen, registry, () => checks);
      }
      logger.info({ smtp, http: http?.port ?? null, domains: config.domains, backend: `${config.backend.host}:${config.backend.port}`, policies: config.policies, rules: ruleSet.rules.length }, 'postern listening');
      return { smtp, http: http?.port ?? null };
    },
    async stop() {
      draining = true;
      await drain({
        servers, listener, count,
        markShutdown: (id) => { const s = servers.sessions.get(id); if (s) s.closedBy = 'shutdown'; },
      }, config.shutdown.drainTimeoutMs, overrides.wait);
      await listener.stop();
      await components.backend.close();
      if (!overrides.store) await components.store.close();
      components.resolver.close();
      await http?.close();
    },
  };
}

function readTls(config: Config): { key: Buffer; cert: Buffer } | null {
  if (!config.tls.cert || !config.tls.key) return null;
  return { key: fs.readFileSync(config.tls.key), cert: fs.readFileSync(config.tls.cert) };
}
