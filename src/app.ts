/**
 * Composition root: createGateway(config, deps?) wires every component. No module-level
 * singletons, every seam injectable, so tests run several gateways in one process. The parts
 * live in src/gateway/: components (built once), the pipeline's dependencies (rebuilt on
 * reload), reload, readiness, and the lifecycle (start, and stop with its drain).
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config/schema.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { ConfigErrors } from './core/errors.ts';
import type { TempReply } from './core/reply.ts';
import type { DnsResolver } from './dns/index.ts';
import { createLogger } from './observability/logger.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { checkDecisionsFile, openDecisionFile } from './observability/decision-file.ts';
import { runChecks, type CheckResult } from './observability/http.ts';
import { loadPolicies } from './policy/load.ts';
import type { RuleSet } from './policy/types.ts';
import type { Backend } from './relay/backend.ts';
import { loadLists, type Lists } from './reputation/lists.ts';
import { redisConfigured } from './reputation/store.ts';
import type { RateStore } from './reputation/types.ts';
import type { ListenerOptions } from './smtp/listener.ts';
import { createComponents } from './gateway/components.ts';
import type { Wait } from './gateway/drain.ts';
import { createLifecycle } from './gateway/lifecycle.ts';
import { createFront, type Front } from './gateway/front.ts';
import { buildPipelineDeps } from './gateway/pipeline-deps.ts';
import { readinessChecks } from './gateway/readiness.ts';
import { createReloader } from './gateway/reload.ts';
import { mailauthResolver } from './dns/index.ts';
import { createFailureReports, createReporting } from './reports/index.ts';
import { VERSION } from './core/version.ts';
import { createDnsWatch, dnsReadiness, dnsServersOf } from './startup/health.ts';
import { loadStartupResources, loadTls, type StartupResources } from './startup/resources.ts';
import type { TlsCredentials } from './tls/credentials.ts';
import type { PipelineDeps } from './pipeline/deps.ts';

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
  /** A worker of a cluster: node-wide connection slots from the primary (src/cluster/slots.ts). */
  admitConnection: ListenerOptions['admit'];
  /** How often the in-serve DMARC report scheduler runs (default 5 minutes; tests run it often, with a manual clock). */
  reportSchedulerIntervalMs: number;
}

export interface Gateway {
  /** Binds SMTP and HTTP listeners; resolves with the bound ports (port 0 → ephemeral). */
  start(): Promise<{ smtp: Array<{ host: string; port: number }>; http: number | null }>;
  /**
   * SIGHUP: re-reads the config (through `reloadConfig`), the policy folder and the lists,
   * all or nothing; on any error the old ones stay (thrown, logged, counted).
   */
  reload(): Promise<void>;
  /** The first half of a reload, for a cluster primary that applies one to every worker or none (gateway/reload.ts). */
  prepareReload(next: Config, opts?: { announce?: boolean }): Promise<{ commit(): void }>;
  /** What /readyz reports for this gateway (a cluster primary asks each worker). */
  readiness(): Promise<CheckResult[]>;
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

/** What the pipeline reads and a reload swaps: one object, so a swap is one assignment each. */
interface Live {
  config: Config;
  ruleSet: RuleSet;
  lists: Lists;
  deps: PipelineDeps;
}

export async function createGateway(config: Config, overrides: Partial<Deps> = {}): Promise<Gateway> {
  const decisionsErrors = checkDecisionsFile(config); // before anything is opened
  if (decisionsErrors.length > 0) throw new ConfigErrors(decisionsErrors);
  const clock = overrides.clock ?? systemClock;
  const logger = overrides.logger ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  const registry = overrides.registry ?? new Registry();
  const metrics = createMetrics(registry);
  metrics.buildInfo.set({ version: VERSION, node: process.version }, 1);
  metrics.workers.set(1); // this process takes the mail (a cluster primary reports the node's count)
  const dnsServers = dnsServersOf(config);
  const dnsWatch = createDnsWatch(config, dnsServers, metrics, logger);
  const components = createComponents(config, { clock, logger, metrics, dnsServers, observeDns: (o) => dnsWatch.observe(o) }, overrides);
  const resources = await countedLoad(metrics, () => (overrides.resources ? Promise.resolve(overrides.resources) : loadStartupResources(config)));
  const extras = openExtras(config, { clock, logger, metrics, resolver: components.resolver, store: components.store, schedulerIntervalMs: overrides.reportSchedulerIntervalMs });
  const pipelineContext = {
    clock, logger, metrics, components, ruleSet: () => live.ruleSet, lists: () => live.lists,
    reports: extras.reporting?.collector ?? null, failureReports: extras.failureReports, decisionFile: extras.decisionFile,
    dropSession: (id: string, reply: TempReply) => front.servers.drop(id, reply),
  };
  const live: Live = { config, ruleSet: resources.ruleSet, lists: resources.lists, deps: buildPipelineDeps(config, pipelineContext) };

  const front = createFront(config, { deps: () => live.deps, logger, metrics, resolver: components.resolver, isDraining: () => life.draining(), tls: resources.tls,
    ...(overrides.admitConnection ? { admit: overrides.admitConnection } : {}) });
  const reload = createReloader({
    running: () => live.config,
    readConfig: () => overrides.reloadConfig?.() ?? live.config,
    loadPolicies,
    loadLists,
    loadTls: (next) => loadTls(next),
    apply: (next) => {
      Object.assign(live, { config: next.config, ruleSet: next.ruleSet, lists: next.lists, deps: buildPipelineDeps(next.config, pipelineContext) });
      logger.level = next.config.log.level;
      if (next.tls) swapCertificate(front, next.tls, logger);
    },
    logger,
    metrics,
  });
  const checks = [...readinessChecks({
    rules: () => live.ruleSet.rules.length,
    backend: components.backend,
    sharedStore: redisConfigured(config.redis) ? { store: components.store, failMode: () => live.config.redis.failMode } : null,
  }), dnsReadiness(dnsWatch)];
  const life = createLifecycle({
    config, logger, registry, front, components, extras, dnsWatch, checks, rules: () => live.ruleSet.rules.length,
    storeInjected: overrides.store !== undefined, wait: overrides.wait,
  });

  return {
    metrics,
    registry,
    logger,
    openConnections: () => front.listener.connectionCount(),
    checkBackend: () => components.backend.probe(),
    reload: () => reload.reload(),
    prepareReload: (next, opts) => reload.prepare(next, opts),
    readiness: () => runChecks(checks),
    start: () => life.start(),
    stop: () => life.stop(),
  };
}

/**
 * The start-up load (or serve's preflight result) counted as the first policy load; both
 * series exist from the start, so the first failed reload is an increase() Prometheus sees.
 */
async function countedLoad<T extends { ruleSet: RuleSet }>(metrics: Metrics, load: () => Promise<T>): Promise<T> {
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  const loaded = await load().catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(loaded.ruleSet.rules.length);
  return loaded;
}

/**
 * DMARC aggregate reports (collector on the mail path, scheduler started with the gateway),
 * failure reports (offered each transaction, sent from their own queue) and decisions.file,
 * when configured.
 */
function openExtras(config: Config, ctx: {
  clock: Clock; logger: Logger; metrics: Metrics; resolver: DnsResolver; store: RateStore; schedulerIntervalMs: number | undefined;
}) {
  const { clock, logger, metrics } = ctx;
  return {
    reporting: config.reports.dmarc.enabled
      ? createReporting(config, {
        clock, logger, resolver: mailauthResolver(ctx.resolver), metrics: metrics.dmarcReports,
        ...(ctx.schedulerIntervalMs ? { schedulerIntervalMs: ctx.schedulerIntervalMs } : {}),
      })
      : null,
    failureReports: config.reports.dmarc.failure.enabled
      ? createFailureReports(config, { clock, logger, resolver: mailauthResolver(ctx.resolver), metrics: metrics.dmarcReports, store: ctx.store })
      : null,
    decisionFile: config.decisions.file
      ? openDecisionFile({ ...config.decisions, file: config.decisions.file }, { clock, logger, counted: (outcome) => metrics.decisionFileRecords.inc({ outcome }) })
      : null,
  };
}

/** A renewed certificate for new STARTTLS sessions; sessions already in TLS keep theirs. */
function swapCertificate(front: Front, tls: TlsCredentials, logger: Logger): void {
  for (const s of [front.servers.plain, front.servers.xclient]) s.updateSecureContext({ key: tls.key, cert: tls.cert });
  logger.info({ subject: tls.subject, notAfter: tls.notAfter.toISOString() }, 'TLS certificate reloaded');
}
