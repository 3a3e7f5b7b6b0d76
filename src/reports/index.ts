/**
 * DMARC reporting from configuration. Aggregate reports: the store (Redis when configured,
 * else the local SQLite file), the collector the pipeline calls, the sender, the scheduler.
 * Failure reports: the reporter the pipeline offers each transaction to (failure/). The
 * composition root (app.ts) and the CLI (cli.ts) both build them here.
 */
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { DNSResolver } from 'mailauth';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { domainOf, normaliseDomain, registrableDomainOf } from '../core/domain.ts';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { connectRedis } from '../reputation/redis-connect.ts';
import { redisConfigured } from '../reputation/store.ts';
import { VERSION } from '../core/version.ts';
import type { RateStore } from '../reputation/types.ts';
import { createCollector, type Collector } from './collector.ts';
import type { RelaySettings } from './deliver.ts';
import { createFailureReporter, type FailureReporter } from './failure/reporter.ts';
import { createLocalReportStore } from './local-store.ts';
import type { Signer } from './mail.ts';
import type { ReportMetrics } from './metrics.ts';
import { createRedisReportStore } from './redis-store.ts';
import { startScheduler, type Scheduler } from './scheduler.ts';
import { createSender, type Sender } from './sender.ts';
import type { ReportStore } from './store.ts';

export const GENERATOR = 'Postern';
const SCHEDULER_INTERVAL_MS = 300_000;

export interface Reporting {
  readonly collector: Collector;
  readonly sender: Sender;
  readonly store: ReportStore;
  /** `serve` only: the periodic sending run. */
  startScheduler(): void;
  close(): Promise<void>;
}

/** The signing key, read and parsed now: a bad key file is a start-up error, not a silent unsigned report. */
export function loadSigner(cfg: Config['reports']['dmarc']): Signer | null {
  const { domain, selector, keyFile } = cfg.signing;
  if (!keyFile) return null;
  let pem: string;
  try {
    pem = fs.readFileSync(keyFile, 'utf8');
    createPrivateKey(pem);
  } catch (err) {
    throw new ConfigErrors([new ConfigError(`cannot use ${keyFile}: ${(err as Error).message}`, { key: 'reports.dmarc.signing.keyFile' })]);
  }
  return { domain, selector, privateKey: pem };
}

/**
 * What `check-config` verifies beyond the schema, so that what it accepts `serve` starts with:
 * the signing key parses and, for aggregate reports without Redis, the state folder is
 * writable. Returns the summary lines, or null when reporting is off; throws ConfigErrors.
 */
export function checkReporting(config: Config): string | null {
  const cfg = config.reports.dmarc;
  if (!cfg.enabled && !cfg.failure.enabled) return null;
  const signer = loadSigner(cfg);
  const signed = signer ? `signed d=${signer.domain} s=${signer.selector}` : 'not signed';
  const lines: string[] = [];
  if (cfg.enabled) {
    const redis = redisConfigured(config.redis);
    if (!redis) {
      try {
        fs.mkdirSync(cfg.stateDir, { recursive: true });
        fs.accessSync(cfg.stateDir, fs.constants.W_OK);
      } catch (err) {
        throw new ConfigErrors([new ConfigError(`not a writable folder: ${(err as Error).message}`, { key: 'reports.dmarc.stateDir' })]);
      }
    }
    lines.push(`reports: DMARC aggregate reports on, every ${cfg.periodHours} h, store ${redis ? 'Redis' : `${cfg.stateDir}/dmarc-reports.sqlite`}, ${signed}, from ${cfg.email}`);
  }
  const f = cfg.failure;
  if (f.enabled) {
    lines.push(`reports: DMARC failure reports on, header only and redacted, at most ${f.perDomainPerHour} per domain an hour and ${f.ratePerMinute} a minute, ${signed}, from ${cfg.email}`);
  }
  return lines.join('\n');
}

/**
 * What `check-config` and `serve` warn about without refusing: RFC 9990 §4 wants report mail
 * to pass DMARC aligned (a receiver may drop what does not), and only the DKIM signature is
 * ours to make aligned; SPF depends on the relay and the From domain's record. Warning lines.
 */
export function reportingWarnings(config: Config): string[] {
  const cfg = config.reports.dmarc;
  if (!(cfg.enabled || cfg.failure.enabled) || !cfg.email) return [];
  const from = domainOf(cfg.email);
  const why = 'RFC 9990 §4: report mail must pass DMARC aligned, or receivers may discard it';
  if (!cfg.signing.domain) {
    return [`reports.dmarc.signing: reports are not DKIM-signed; they pass DMARC only if ${from}'s SPF authorises the relay (${why}); set signing.domain to ${from} or a subdomain of it`];
  }
  const signing = normaliseDomain(cfg.signing.domain);
  if (registrableDomainOf(signing) === registrableDomainOf(from)) return [];
  return [`reports.dmarc.signing.domain: ${signing} does not align with ${from}, the domain of reports.dmarc.email; the signature does not make reports pass DMARC (${why})`];
}

export function createReportStore(config: Config, clock: Clock, onError?: (err: unknown) => void): ReportStore {
  const cfg = config.reports.dmarc;
  const periodMs = cfg.periodHours * 3_600_000;
  if (redisConfigured(config.redis)) {
    // Its own connection: report traffic never queues behind (or fails) rate-limit traffic.
    return createRedisReportStore({
      client: connectRedis(config.redis),
      keyPrefix: config.redis.keyPrefix,
      ttlSeconds: Math.ceil((periodMs + cfg.maxAgeHours * 3_600_000) / 1000) + 2 * 86_400,
      ownsClient: true,
      connectTimeoutMs: config.redis.connectTimeoutMs,
    });
  }
  try {
    return createLocalReportStore({ dir: cfg.stateDir, clock, ...(onError ? { onError } : {}) });
  } catch (err) {
    throw new ConfigErrors([new ConfigError(`cannot open the report store in ${cfg.stateDir}: ${(err as Error).message}`, { key: 'reports.dmarc.stateDir' })]);
  }
}

export function createReporting(config: Config, deps: {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly resolver: DNSResolver;
  readonly metrics: ReportMetrics | null;
  /** The scheduler's interval; default 5 minutes (tests run it faster, with a manual clock). */
  readonly schedulerIntervalMs?: number;
}): Reporting {
  const cfg = config.reports.dmarc;
  const signer = loadSigner(cfg);
  const logger = deps.logger.child({ component: 'dmarc-reports' });
  const store = createReportStore(config, deps.clock, () => deps.metrics?.collectErrors.inc());
  const collector = createCollector({ store, clock: deps.clock, periodMs: cfg.periodHours * 3_600_000, metrics: deps.metrics, logger });
  const sender = createSender({
    store, resolver: deps.resolver, clock: deps.clock, logger, metrics: deps.metrics, signer,
    settings: {
      orgName: cfg.orgName, email: cfg.email, extraContact: cfg.extraContact, maxReportBytes: cfg.maxReportBytes,
      generator: GENERATOR, maxAgeMs: cfg.maxAgeHours * 3_600_000, ratePerMinute: cfg.ratePerMinute,
    },
    relay: relaySettings(config),
  });
  let scheduler: Scheduler | null = null;
  return {
    collector, sender, store,
    startScheduler() {
      if (!cfg.schedule) return;
      scheduler ??= startScheduler({ sender, store, logger, intervalMs: deps.schedulerIntervalMs ?? SCHEDULER_INTERVAL_MS });
    },
    async close() {
      await scheduler?.stop();
      await store.close();
    },
  };
}

/** reports.dmarc.relay, or the backend, with the backend's timeouts: where every report goes. */
export function relaySettings(config: Config): RelaySettings {
  const cfg = config.reports.dmarc;
  return {
    host: cfg.relay.host || config.backend.host,
    port: cfg.relay.port || config.backend.port,
    hostname: config.hostname,
    connectTimeoutMs: config.backend.connectTimeoutMs,
    commandTimeoutMs: config.backend.commandTimeoutMs,
    dataTimeoutMs: config.backend.dataTimeoutMs,
  };
}

/** Failure reports (reports.dmarc.failure.enabled): the reporter the pipeline offers each finished transaction to. */
export function createFailureReports(config: Config, deps: {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly resolver: DNSResolver;
  readonly metrics: ReportMetrics | null;
  readonly store: RateStore;
}): FailureReporter {
  const cfg = config.reports.dmarc;
  const f = cfg.failure;
  return createFailureReporter({
    settings: {
      perDomainPerHour: f.perDomainPerHour, ratePerMinute: f.ratePerMinute, queueSize: f.queueSize,
      omitHeaders: new Set(f.omitHeaders.map((h) => h.toLowerCase())), from: cfg.email, hostname: config.hostname, userAgent: `${GENERATOR}/${VERSION}`,
    },
    store: deps.store, resolver: deps.resolver, clock: deps.clock, metrics: deps.metrics, signer: loadSigner(cfg), relay: relaySettings(config),
    logger: deps.logger.child({ component: 'dmarc-failure-reports' }),
  });
}
