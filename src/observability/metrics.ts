/**
 * The Prometheus catalogue (prefix postern_). The registry is injected, never prom-client's
 * global one, so two gateways can run in one process (tests). Label values come from closed
 * sets (Action, Reason, AuthResult, rule names from our own policy files): never a domain,
 * an address or an IP.
 */
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { reportMetrics } from '../reports/metrics.ts';

export function createMetrics(registry: Registry, opts: { defaultMetrics?: boolean } = {}) {
  const registers = [registry];
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'postern_' });
  return {
    connections: new Counter({
      name: 'postern_connections_total', registers,
      help: 'SMTP connections by outcome (accepted, refused) and reason (ok, too-many-connections, rate-limited, store-unavailable, shutting-down, proxy-error)',
      labelNames: ['outcome', 'reason'] as const,
    }),
    sessionsInFlight: new Gauge({ name: 'postern_sessions_in_flight', help: 'Open SMTP sessions', registers }),
    connectionsOpen: new Gauge({ name: 'postern_connections_open', help: 'Client connections holding a connection slot (counted against limits.maxConnections)', registers }),
    messages: new Counter({
      name: 'postern_messages_total', registers,
      help: 'Finished transactions by enforced action (accept, tag, quarantine, tempfail, reject), policy rule ("" = none) and reason',
      labelNames: ['action', 'rule', 'reason'] as const,
    }),
    transactionEndings: new Counter({
      name: 'postern_transaction_endings_total', registers,
      help: 'Transactions by how they ended (delivered, policy, backend-refused, rate-limited, message-limit, data-timeout, client-gone, backend-lost, quarantine-failed, shutdown, abandoned, internal-error)',
      labelNames: ['ending'] as const,
    }),
    monitorWouldHave: new Counter({
      name: 'postern_monitor_would_have_total', registers,
      help: 'Monitor-mode rules that matched: the action enforcing them would have taken, by rule',
      labelNames: ['action', 'rule'] as const,
    }),
    authResults: new Counter({
      name: 'postern_auth_results_total', registers,
      help: 'Authentication results by method (spf, dkim, arc, dmarc) and result (pass, fail, softfail, neutral, none, temperror, permerror, policy)',
      labelNames: ['method', 'result'] as const,
    }),
    replies: new Counter({
      name: 'postern_smtp_replies_total', registers,
      help: 'Replies to MAIL, RCPT and DATA, and refusals of a session at connect, by stage (connect, mail, rcpt, data) and class (2xx, 4xx, 5xx)',
      labelNames: ['stage', 'class'] as const,
    }),
    inflightBytes: new Gauge({ name: 'postern_inflight_bytes', help: 'Message bytes held in memory now, all sessions together (limits.maxBytesInFlight is the budget)', registers }),
    inflightRefusals: new Counter({
      name: 'postern_inflight_budget_refusals_total', registers,
      help: 'Messages deferred with 452 4.3.1 because the in-flight byte budget was used up, by stage (mail, data)',
      labelNames: ['stage'] as const,
    }),
    relayLatency: new Histogram({
      name: 'postern_relay_duration_seconds', registers,
      help: 'Time from sending DATA to the backend until its final reply, by outcome (delivered, tempfail, rejected, error)',
      labelNames: ['outcome'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    }),
    relayErrors: new Counter({
      name: 'postern_relay_errors_total', registers,
      help: 'Backend failures by kind (connect, timeout, closed, protocol, tls)',
      labelNames: ['kind'] as const,
    }),
    dnsLookups: new Counter({
      name: 'postern_dns_lookups_total', registers,
      help: 'DNS queries sent, by record type and outcome (ok, nxdomain, nodata, servfail, refused, unreachable, timeout, error)',
      labelNames: ['type', 'outcome'] as const,
    }),
    dnsCacheHits: new Counter({
      name: 'postern_dns_cache_hits_total', registers,
      help: 'DNS answers served from the in-process cache, by record type',
      labelNames: ['type'] as const,
    }),
    dnsLatency: new Histogram({
      name: 'postern_dns_lookup_duration_seconds', registers,
      help: 'DNS query latency by record type',
      labelNames: ['type'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    }),
    tlsHandshakes: new Counter({
      name: 'postern_tls_handshakes_total', registers,
      help: 'STARTTLS handshakes by outcome (ok, failed)',
      labelNames: ['outcome'] as const,
    }),
    rateLimitHits: new Counter({
      name: 'postern_rate_limit_hits_total', registers,
      help: 'SMTP steps refused by a rate limiter (ip-connections, net-connections, ip-messages, net-messages, domain-messages, ip-recipients, net-recipients, rcpt-messages, blocklist)',
      labelNames: ['limiter'] as const,
    }),
    tierConnections: new Counter({
      name: 'postern_reputation_tier_total', registers,
      help: 'Connections by the reputation tier of the client (trusted, good, neutral, suspect, bad)',
      labelNames: ['tier'] as const,
    }),
    tierDecisions: new Counter({
      name: 'postern_tier_decisions_total', registers,
      help: 'Finished transactions by client reputation tier and enforced action',
      labelNames: ['tier', 'action'] as const,
    }),
    storeErrors: new Counter({
      name: 'postern_store_errors_total', registers,
      help: 'Rate/reputation store (Redis) errors by operation (take, release, scores, learn, inspect, reset)',
      labelNames: ['op'] as const,
    }),
    storeLatency: new Histogram({
      name: 'postern_store_duration_seconds', registers,
      help: 'Rate/reputation store (Redis) latency by operation',
      labelNames: ['op'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    }),
    storeUp: new Gauge({
      name: 'postern_store_up', registers,
      aggregator: 'min', // with workers: 0 as soon as one of them answers from its fallback
      help: '1 when the shared store (Redis) answers or none is configured; 0 while answering from the local fallback',
    }),
    messageLimits: new Counter({
      name: 'postern_message_limits_total', registers,
      help: 'Per-message limits reached, by limit (header-bytes, header-fields, header-field-lines, header-lines: refused 552 5.3.4; dkim-signatures: the rest not verified; dkim-header-names: signatures with too long an h= not verified; arc-sets: arc=fail; auth-deadline, spf-deadline: temperror)',
      labelNames: ['limit'] as const,
    }),
    policyReloads: new Counter({
      name: 'postern_policy_reloads_total', registers,
      help: 'Policy (re)loads by outcome (ok, failed)',
      labelNames: ['outcome'] as const,
    }),
    policyRules: new Gauge({ name: 'postern_policy_rules', help: 'Rules in the active policy set', registers }),
    dmarcReports: reportMetrics(registers), // postern_dmarc_* (src/reports/metrics.ts)

    policyOverrides: new Counter({
      name: 'postern_policy_overrides_total', registers,
      help: 'Messages that failed DMARC and got a verdict weaker than the published policy, by what was trusted (arc, forwarder, rule) and the policy not applied (quarantine, reject)',
      labelNames: ['by', 'policy'] as const,
    }),
    decisionFileRecords: new Counter({
      name: 'postern_decision_file_records_total', registers,
      help: 'Decision records for decisions.file by outcome (written, dropped: the disk did not keep up or the file failed)',
      labelNames: ['outcome'] as const,
    }),
    dnsUp: new Gauge({
      name: 'postern_dns_up', registers,
      aggregator: 'min', // with workers: 0 as soon as one of them has no resolver answering
      help: '1 while at least one configured DNS resolver answers (probe of the root NS, or any answered lookup), 0 while none does',
    }),
    buildInfo: new Gauge({
      name: 'postern_build_info', registers,
      aggregator: 'first', // every worker runs the same build: 1, not N
      help: 'Always 1; the labels carry the running Postern version and the Node.js version',
      labelNames: ['version', 'node'] as const,
    }),
    // With `workers` > 1 the primary's values are the node's (src/cluster/metrics.ts); one process is its own worker.
    workers: new Gauge({ name: 'postern_workers', help: 'Worker processes running and listening (1 without workers)', registers }),
    workerRestarts: new Counter({ name: 'postern_worker_restarts_total', help: 'Workers that exited unexpectedly and were started again', registers }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

export function replyClass(code: number): '2xx' | '4xx' | '5xx' {
  return code < 400 ? '2xx' : code < 500 ? '4xx' : '5xx';
}
