/**
 * DMARC report metrics (prefix postern_dmarc_). Labels are closed sets; never a domain.
 * Part of the gateway's catalogue (observability/metrics.ts spreads them in).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export const DELIVERY_OUTCOMES = ['sent', 'deferred', 'failed', 'refused', 'uncertain'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];
export const FAILURE_OUTCOMES = ['sent', 'rate-limited', 'queue-full', 'refused', 'failed'] as const;
export type FailureOutcome = (typeof FAILURE_OUTCOMES)[number];

export function reportMetrics(registers: Registry[]) {
  const deliveries = new Counter({
    name: 'postern_dmarc_report_deliveries_total', registers,
    help: 'DMARC aggregate report deliveries by outcome: sent (relay said 250), deferred (4xx, DNS or relay trouble: retried), failed (5xx or too old: given up), refused (destination not verified, RFC 9990 §3), uncertain (the node stopped after the final "." without an answer: not resent)',
    labelNames: ['outcome'] as const,
  });
  // Every outcome exists from the start, so the first failure is an increase() Prometheus sees.
  for (const outcome of DELIVERY_OUTCOMES) deliveries.inc({ outcome }, 0);
  const failureReports = new Counter({
    name: 'postern_dmarc_failure_reports_total', registers,
    help: 'DMARC failure reports (RFC 9991) by outcome: sent (the relay said 250; one per destination), rate-limited (over perDomainPerHour for the reported domain: dropped), queue-full (queueSize reports waiting already: dropped), refused (destination not verified, RFC 9990 §3), failed (relay refused or unreachable, DNS error, shutdown: not retried)',
    labelNames: ['outcome'] as const,
  });
  for (const outcome of FAILURE_OUTCOMES) failureReports.inc({ outcome }, 0);
  return {
    rows: new Counter({ name: 'postern_dmarc_rows_collected_total', registers, help: 'Messages counted for DMARC aggregate reports (domains that publish rua=)' }),
    collectErrors: new Counter({ name: 'postern_dmarc_collect_errors_total', registers, help: 'Messages that could not be counted for DMARC reports (store unreachable or slow); the mail itself is unaffected' }),
    generated: new Counter({ name: 'postern_dmarc_reports_generated_total', registers, help: 'DMARC aggregate reports generated (one per report domain and period, more when split by size)' }),
    deliveries,
    failureReports,
    pending: new Gauge({
      name: 'postern_dmarc_reports_pending', registers,
      // with workers, one of them runs the reports at a time and the others keep what their own
      // last run saw (or 0): the node's figure is the largest, never their sum
      aggregator: 'max',
      help: 'DMARC report jobs (domain and period) not finished yet, as of the last sending run',
    }),
  };
}

export type ReportMetrics = ReturnType<typeof reportMetrics>;
