/**
 * Composition root: createGateway(config, deps?) wires every component. No module-level
 * singletons, every seam injectable, so tests run several gateways in one process. The parts
 * live in src/gateway/: components (built once), the pipeline's dependencies (rebuilt on
 * reload), reload, readiness and drain.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config/schema.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { ConfigErrors } from './core/errors.ts';
import type { DnsResolver } from './dns/index.ts';
import { createLogger } from './observability/logger.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { checkDecisionsFile, openDecisionFile } from './observability/decision-file.ts';
import { startHttp, type HttpEndpoint } from './observability/http.ts';
import { loadPolicies } from './policy/load.ts';
import type { RuleSet } from './policy/types.ts';
import type { Backend } from './relay/backend.ts';
import { loadLists, type Lists } from './reputation/lists.ts';
import { redisConfigured } from './reputation/store.ts';
import type { RateStore } from './reputation/types.ts';
import { createComponents } from './gateway/components.ts';
import { drain, type Wait } from './gateway/drain.ts';
import { createFront } from './gateway/front.ts';
import { buildPipelineDeps } from './gateway/pipeline-deps.ts';
import { readinessChecks } from './gateway/readiness.ts';
import { createReloader } from './gateway/reload.ts';
import { mailauthResolver } from './dns/index.ts';
import { createReporting } from './reports/index.ts';
import { VERSION } from './core/version.ts';
import { createDnsWatch, dnsReadiness, dnsServersOf } from './startup/health.ts';
import { loadStartupResources, loadTls, type StartupResources } from './startup/resources.ts';

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
  /** Policies, lists and TLS as serve's start-up checks loaded them (else loaded here, the same way). */
  resources: StartupResources;
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
  /** One backend session (connect, EHLO, QUIT), as /readyz does: serve's start-up warning. */
  checkBackend(): Promise<{ ok: true } | { ok: false; error: string }>;
  readonly metrics: Metrics;
  readonly registry: Registry;
  readonly logger: Logger;
}

export async function createGateway(config: Config, overrides: Partial<Deps> = {}): Promise<Gateway> {
  const decisionsErrors = checkDecisionsFile(config); // before anything is opened
  if (decisionsErrors.length > 0) throw new ConfigErrors(decisionsErrors);
  const clock = overrides.clock ?? systemClock;
  const logger = overrides.logger ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  const registry = overrides.registry ?? new Registry();
  const metrics = createMetrics(registry);
  metrics.buildInfo.set({ version: VERSION, node: process.version }, 1);
  const dnsServers = dnsServersOf(config);
  const dnsWatch = createDnsWatch(config, dnsServers, metrics, logger);
  const components = createComponents(config, { clock, logger, metrics, dnsServers, observeDns: (o) => dnsWatch.observe(o) }, overrides);

  // Both series exist from the start, so the first failed reload is an increase() Prometheus sees.
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  const resources = overrides.resources ?? await loadStartupResources(config).catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  let ruleSet: RuleSet = resources.ruleSet;
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(ruleSet.rules.length);
  let lists: Lists = resources.lists;
  // DMARC aggregate reports (off by default): collector on the mail path, scheduler in start().
  const reporting = config.reports.dmarc.enabled
    ? createReporting(config, { clock, logger, resolver: mailauthResolver(components.resolver), metrics: metrics.dmarcReports })
    : null;
  const decisionFile = config.decisions.file
    ? openDecisionFile({ ...config.decisions, file: config.decisions.file }, { clock, logger, counted: (outcome) => metrics.decisionFileRecords.inc({ outcome }) })
    : null;
  let running = config;
  const pipelineContext = {
    decisionFile,
    clock, logger, metrics, components, ruleSet: () => ruleSet, lists: () => lists, reports: reporting?.collector ?? null,
    dropSession: (id: string, line: string) => front.listener.dropSession(id, line),
  };
  let deps = buildPipelineDeps(config, pipelineContext);

  let draining = false;
  const front = createFront(config, { deps: () => deps, logger, metrics, resolver: components.resolver, isDraining: () => draining, tls: resources.tls });

  const reload = createReloader({
    running: () => running,
    readConfig: () => overrides.reloadConfig?.() ?? running,
    loadPolicies,
    loadLists,
    loadTls: (next) => loadTls(next),
    apply: (next) => {
      ruleSet = next.ruleSet;
      lists = next.lists;
      running = next.config;
      deps = buildPipelineDeps(next.config, pipelineContext);
      logger.level = next.config.log.level;
      if (next.tls) {
        const tls = next.tls;
        for (const s of [front.servers.plain, front.servers.xclient]) s.updateSecureContext({ key: tls.key, cert: tls.cert });
        logger.info({ subject: tls.subject, notAfter: tls.notAfter.toISOString() }, 'TLS certificate reloaded');
      }
    },
    logger,
    metrics,
  });
  let http: HttpEndpoint | null = null;

  return {
    metrics,
    registry,
    logger,
    openConnections: () => front.listener.connectionCount(),
    checkBackend: () => components.backend.probe(),
    reload,
    async start() {
      const smtp = await front.listener.start();
      reporting?.startScheduler();
      await dnsWatch.start();
      if (config.metrics.listen) {
        const checks = readinessChecks({
          rules: () => ruleSet.rules.length,
          backend: components.backend,
          sharedStore: redisConfigured(config.redis) ? { store: components.store, failMode: () => running.redis.failMode } : null,
        });
        checks.push(dnsReadiness(dnsWatch));
        http = await startHttp(config.metrics.listen, registry, () => checks);
      }
      logger.info({ version: VERSION, smtp, http: http?.port ?? null, domains: config.domains, backend: `${config.backend.host}:${config.backend.port}`, policies: config.policies, rules: ruleSet.rules.length }, 'postern listening');
      return { smtp, http: http?.port ?? null };
    },
    async stop() {
      draining = true;
      await drain(front, config.shutdown.drainTimeoutMs, overrides.wait);
      await front.listener.stop();
      await components.backend.close();
      await reporting?.close();
      await decisionFile?.close();
      if (!overrides.store) await components.store.close();
      components.resolver.close();
      dnsWatch.close();
      await http?.close();
      await decisionFile?.close();
    },
  };
}
