/**
 * The mail path's side of reporting: one call per finished transaction, fire-and-forget. It
 * never throws, never awaits on the caller's behalf and never changes what happens to the
 * message; a failed update is counted (postern_dmarc_collect_errors_total) and logged at most
 * once a minute.
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import type { ReportMetrics } from './metrics.ts';
import { collectedFrom, encodeRow, type TransactionOutcome } from './row.ts';
import type { ReportStore } from './store.ts';

export interface Collector {
  collect(outcome: TransactionOutcome): void;
}

/** A report domain we can key on: an A-label name (no braces, which are Redis hash tags). */
const SAFE_DOMAIN = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

export function createCollector(deps: {
  readonly store: ReportStore;
  readonly clock: Clock;
  readonly periodMs: number;
  readonly metrics: ReportMetrics | null;
  readonly logger: Logger;
}): Collector {
  let lastWarning = 0;
  const failed = (err: unknown): void => {
    deps.metrics?.collectErrors.inc();
    const now = deps.clock.now();
    if (now - lastWarning < 60_000) return;
    lastWarning = now;
    deps.logger.warn({ err: (err as Error)?.message ?? String(err) }, 'DMARC report data could not be counted (mail is not affected)');
  };
  return {
    collect(outcome) {
      try {
        const c = collectedFrom(outcome);
        if (!c || !SAFE_DOMAIN.test(c.domain)) return;
        const now = deps.clock.now();
        const period = Math.floor(now / deps.periodMs) * deps.periodMs; // UTC-aligned: the epoch is 00:00 UTC
        deps.store.collect({ domain: c.domain, period, periodEnd: period + deps.periodMs, field: encodeRow(c.row), policy: JSON.stringify(c.published) })
          .then(() => deps.metrics?.rows.inc(), failed);
      } catch (err) {
        failed(err);
      }
    },
  };
}
