/**
 * What a transaction's end leaves behind for operators: the metrics of the message and the
 * one `decision` log line (DESIGN.md "Observability"): who, what, every auth result with its
 * reason, the rule, the action, the ending, the backend's reply and durations. Replies are
 * counted by the SMTP adapter, where they are sent, not here.
 */
import type { Facts } from '../core/facts.ts';
import type { FailReply } from '../core/reply.ts';
import type { Action, Decision, Reason } from '../core/verdict.ts';
import { decisionRecord } from '../observability/decision-record.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { EndDeps } from './deps.ts';
import type { Ending } from './endings.ts';
import { replyLine } from './replies.ts';
import type { SessionState, Transaction } from './state.ts';

export interface EndRecord {
  readonly ending: Ending;
  readonly facts: Facts;
  readonly decision: Decision | null;
  readonly action: Action;
  readonly reason: Reason;
  readonly reply: FailReply | null;
  readonly stage: 'mail' | 'data';
  readonly timing: { readonly totalMs: number; readonly authMs?: number; readonly relayMs?: number };
}

export function countMessage(metrics: Metrics, r: EndRecord): void {
  const rule = r.decision?.enforced.rule ?? '';
  metrics.messages.inc({ action: r.action, rule, reason: r.reason });
  metrics.tierDecisions.inc({ tier: r.facts.client.tier, action: r.action });
  const would = r.decision?.wouldHave;
  if (would) metrics.monitorWouldHave.inc({ action: would.action, rule: would.rule });
  const override = r.decision?.override;
  if (override) metrics.policyOverrides.inc({ by: override.by, policy: override.policy });
  const f = r.facts;
  metrics.authResults.inc({ method: 'spf', result: f.spf.result });
  if (f.dkim) {
    if (f.dkim.length === 0) metrics.authResults.inc({ method: 'dkim', result: 'none' });
    for (const sig of f.dkim) metrics.authResults.inc({ method: 'dkim', result: sig.result });
    if (f.arc) metrics.authResults.inc({ method: 'arc', result: f.arc.result });
    metrics.authResults.inc({ method: 'dmarc', result: f.dmarc?.result ?? 'none' });
  }
}

/**
 * The decision record (src/observability/decision-record.ts, versioned): every fact a rule can
 * match on, so `postern replay` can decide it again; logged, and appended to decisions.file
 * when one is configured.
 */
export function logDecision(state: SessionState, tx: Transaction, r: EndRecord, file: EndDeps['decisionFile']): void {
  if (!file && !state.log.isLevelEnabled('info')) return; // nobody would read it: do not build it
  const ending = r.ending;
  const error = 'error' in ending ? errorText(ending.error) : ending.kind === 'quarantine-failed' ? `quarantine mailbox unreachable at ${ending.step}: ${ending.detail}` : null;
  const record = decisionRecord({
    facts: r.facts,
    stage: r.stage,
    ...(r.decision ? { decision: r.decision } : {}),
    rule: r.decision?.enforced.rule ?? '',
    action: r.action,
    reason: r.reason,
    recipients: tx.recipients.map((x) => x.address),
    ending: ending.kind,
    ...(r.reply ? { reply: replyLine(r.reply) } : {}),
    ...(ending.kind === 'delivered' || ending.kind === 'backend-refused' ? { backend: replyLine(ending.answer) } : {}),
    ...(error !== null ? { error } : {}),
    ms: { total: r.timing.totalMs, ...(r.timing.authMs !== undefined ? { auth: r.timing.authMs } : {}), ...(r.timing.relayMs !== undefined ? { relay: r.timing.relayMs } : {}) },
  });
  state.log.info(record, 'decision');
  file?.write(state.id, record);
}

/** A transaction the client left before DATA: no message, so no decision, but a trace of what it asked. */
export function logAbandoned(state: SessionState, tx: Transaction, by: string, totalMs: number): void {
  state.log.info({
    event: 'abandoned',
    by,
    envelope: { from: tx.sender, to: tx.recipients.map((x) => x.address) },
    refused: tx.refused,
    ms: { total: totalMs },
  }, 'transaction abandoned');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
