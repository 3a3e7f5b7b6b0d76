/**
 * The end of every transaction that reached a decision: metrics and the one `decision` log
 * line (DESIGN.md "Observability"): who, what, every auth result with its reason, the rule,
 * the action, the backend's reply and durations.
 */
import type { Facts } from '../core/facts.ts';
import type { FailReply } from '../core/reply.ts';
import type { Action, Decision, Reason } from '../core/verdict.ts';
import { decisionRecord } from '../observability/decision-record.ts';
import { replyClass } from '../observability/metrics.ts';
import type { PipelineDeps } from './deps.ts';
import type { BackendReply, SessionState, Transaction } from './state.ts';
import { authenticatedDomain, learn, outcomeOf } from './limits.ts';

export interface Outcome {
  readonly decision?: Decision;
  readonly facts: Facts;
  readonly stage: 'mail' | 'data';
  /** Our failure reply, when the client did not get 250. */
  readonly reply?: FailReply;
  /** Overrides the verdict's reason (oversize, backend trouble, …). */
  readonly reason?: Reason;
  readonly backend?: BackendReply;
  readonly error?: unknown;
  readonly timing?: { authMs?: number; relayMs?: number };
}

export function logDecision(deps: PipelineDeps, state: SessionState, tx: Transaction, o: Outcome): void {
  const verdict = o.decision?.enforced;
  // What actually happened to the message: a backend refusal or failure overrides "accept".
  const action: Action = o.reply ? (o.reply.code >= 500 ? 'reject' : 'tempfail') : (verdict?.action ?? 'accept');
  const reason: Reason = o.reason ?? verdict?.reason ?? 'default';
  const rule = verdict?.rule ?? '';
  const { metrics } = deps;

  metrics.messages.inc({ action, rule, reason });
  metrics.tierDecisions.inc({ tier: o.facts.client.tier, action });
  // Rate-limit refusals were learnt where they happened.
  const taught = reason === 'rate-limited' ? null : outcomeOf(o.reply ? o.reply.code : null, reason, o.facts);
  if (taught) learn(deps, o.facts.client.ip, authenticatedDomain(o.facts), taught);
  metrics.replies.inc({ stage: o.stage, class: o.reply ? replyClass(o.reply.code) : '2xx' });
  const would = o.decision?.wouldHave;
  if (would) metrics.monitorWouldHave.inc({ action: would.action, rule: would.rule });
  const override = o.decision?.override;
  if (override) metrics.policyOverrides.inc({ by: override.by, policy: override.policy });
  const f = o.facts;
  metrics.authResults.inc({ method: 'spf', result: f.spf.result });
  if (o.stage === 'data' && f.dkim) {
    if (f.dkim.length === 0) metrics.authResults.inc({ method: 'dkim', result: 'none' });
    for (const sig of f.dkim) metrics.authResults.inc({ method: 'dkim', result: sig.result });
    if (f.arc) metrics.authResults.inc({ method: 'arc', result: f.arc.result });
    metrics.authResults.inc({ method: 'dmarc', result: f.dmarc?.result ?? 'none' });
  }

  // The decision record (observability/decision-record.ts): every fact a rule can match on, so
  // `postern replay` can decide it again; also appended to decisions.file when configured.
  const record = decisionRecord({
    facts: f,
    stage: o.stage,
    ...(o.decision ? { decision: o.decision } : {}),
    rule,
    action,
    reason,
    recipients: tx.recipients.map((r) => r.address),
    ...(o.reply ? { reply: `${o.reply.code} ${o.reply.enhanced} ${o.reply.text}` } : {}),
    ...(o.backend ? { backend: `${o.backend.code} ${o.backend.enhanced ?? ''} ${o.backend.text}`.replace(/\s+/g, ' ') } : {}),
    ...(o.error ? { error: (o.error as Error).message } : {}),
    ms: { total: deps.clock.now() - tx.startedAt, ...o.timing },
  });
  state.log.info(record, 'decision');
  deps.decisionFile?.write(state.id, record);
}
