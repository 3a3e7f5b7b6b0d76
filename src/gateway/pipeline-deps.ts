/**
 * What a transaction reads from the configuration, bound to the components: built at start
 * and again on every reload, then swapped whole (a transaction sees one coherent set).
 */
import type { Logger } from 'pino';
import { authenticateMessage } from '../auth/message.ts';
import { checkSpf } from '../auth/spf.ts';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { TempReply } from '../core/reply.ts';
import { mailauthResolver } from '../dns/index.ts';
import { messageFingerprint } from '../message/fingerprint.ts';
import { HeaderGuard, type HeaderBreach } from '../message/header-guard.ts';
import { rewrittenChunks } from '../message/headers.ts';
import { LineEndingNormaliser } from '../message/line-endings.ts';
import { buildReceived } from '../message/received.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import { domainSet } from '../pipeline/recipient.ts';
import { decide } from '../policy/decide.ts';
import type { RuleSet } from '../policy/types.ts';
import type { Lists } from '../reputation/lists.ts';
import { createReputation } from '../reputation/reputation.ts';
import type { Collector } from '../reports/collector.ts';
import type { FailureReporter } from '../reports/failure/reporter.ts';
import type { Components } from './components.ts';

export interface PipelineContext {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly components: Components;
  /** The rule set and lists in force (swapped on reload). */
  readonly ruleSet: () => RuleSet;
  readonly lists: () => Lists;
  /** DMARC aggregate report collection, when enabled. */
  readonly reports: Collector | null;
  /** DMARC failure reports, when enabled. */
  readonly failureReports: FailureReporter | null;
  /** decisions.file, when configured. */
  readonly decisionFile: PipelineDeps['decisionFile'] | null;
  /** Writes a reply on a session's connection past smtp-server, counted, and closes it (the SMTP adapter's drop). */
  readonly dropSession: (sessionId: string, reply: TempReply) => void;
}

export function buildPipelineDeps(config: Config, ctx: PipelineContext): PipelineDeps {
  const { clock, metrics, components } = ctx;
  const { store } = components;
  const reputation = createReputation({
    store,
    config,
    lists: ctx.lists,
    scoreCacheMs: config.reputation.scoreCacheSeconds * 1000,
    observer: { limited: (limiter) => metrics.rateLimitHits.inc({ limiter }), tier: () => undefined },
  });
  const settings = settingsOf(config);
  return {
    settings,
    reputation,
    domains: domainSet(config.domains),
    clock,
    logger: ctx.logger,
    metrics,
    decide: (facts, stage) => decide(facts, ctx.ruleSet(), stage),
    ...authChecks(config, components, metrics),
    openBackend: (client) => components.backend.open(client),
    recipientCache: components.recipientCache,
    budget: components.budget,
    ...(ctx.reports ? { reports: ctx.reports } : {}),
    ...(ctx.failureReports ? { failureReports: ctx.failureReports } : {}),
    ...(ctx.decisionFile ? { decisionFile: ctx.decisionFile } : {}),
    dropConnection: ctx.dropSession,
    firstSeen: async (fingerprint) => {
      const now = clock.now();
      // a store that cannot answer makes it the first time: a temperror window starts over
      // (the cautious side), never ends early
      const first = await store.firstSeen(fingerprint, now, settings.firstSeenTtlMs).catch(() => now);
      return Math.max(0, now - first);
    },
    release: (reservations) => {
      for (const r of reservations) reputation.release(r, clock.now()).catch(() => undefined);
    },
    message: messageTools(config, metrics),
  };
}

/** SPF at MAIL, DKIM/ARC/DMARC at DATA: bound to the auth settings and the DNS seam; the limits they hit are counted. */
function authChecks(config: Config, components: Components, metrics: Metrics): Pick<PipelineDeps, 'checkSpf' | 'authenticate'> {
  const authDns = mailauthResolver(components.resolver);
  const strict = config.auth.strict;
  return {
    checkSpf: async ({ ip, helo, sender }) => {
      const spf = await checkSpf({ ip, helo, sender, hostname: config.hostname, resolver: authDns, strict, timeoutMs: config.auth.spfTimeoutMs });
      if (spf.deadlinePassed) metrics.messageLimits.inc({ limit: 'spf-deadline' });
      return spf;
    },
    authenticate: async ({ message, ip, sender, spf, withheld }) => {
      const auth = await authenticateMessage({
        message, ip, sender, spf, hostname: config.hostname, resolver: authDns, strict, minBitLength: config.auth.minKeyBits,
        timeoutMs: config.auth.timeoutMs, maxArcSets: config.auth.maxArcSets, keys: components.dkimKeys,
        ...(withheld ? {
          withheldSignatures: {
            count: () => withheld.count(), max: config.auth.maxDkimSignatures,
            oversigned: () => withheld.oversigned(), maxHeaderNames: config.auth.maxDkimHeaderNames,
          },
        } : {}),
      });
      for (const limit of auth.limits) metrics.messageLimits.inc({ limit });
      return auth;
    },
  };
}

/** The settings the stages read, copied out of the configuration. */
function settingsOf(config: Config): PipelineDeps['settings'] {
  return {
    hostname: config.hostname,
    maxRecipients: config.limits.maxRecipients,
    maxMessageSize: config.limits.maxMessageSize,
    maxHeaderBytes: config.limits.maxHeaderBytes,
    bareLineEndings: config.limits.bareLineEndings,
    dataTimeoutMs: config.limits.dataTimeoutMs,
    maxRcptErrorsPerTransaction: config.backend.maxRcptErrorsPerTransaction,
    firstSeenTtlMs: config.auth.firstSeenTtlSeconds * 1000,
    greetingDelayMs: config.limits.greetingDelayMs,
  };
}

/** What DATA uses to read, guard, fingerprint and rewrite the message; a fresh normaliser and guard per message. */
function messageTools(config: Config, metrics: Metrics): PipelineDeps['message'] {
  return {
    normaliser: () => new LineEndingNormaliser(),
    headerGuard: () => {
      const guard = new HeaderGuard({
        maxHeaderBytes: config.limits.maxHeaderBytes, maxFields: config.limits.maxHeaderFields,
        maxFieldLines: config.limits.maxHeaderFieldLines, maxLines: config.limits.maxHeaderLines,
        maxDkimSignatures: config.auth.maxDkimSignatures, maxHeaderNames: config.auth.maxDkimHeaderNames,
      });
      guard.once('breach', (breach: HeaderBreach) => metrics.messageLimits.inc({ limit: breach.limit }));
      return guard;
    },
    fingerprint: messageFingerprint,
    received: buildReceived,
    rewrite: rewrittenChunks,
  };
}
