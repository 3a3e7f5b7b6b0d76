/**
 * What a transaction's end leaves behind for operators: the metrics of the message and the
 * one `decision` log line (DESIGN.md "Observability"): who, what, every auth result with its
 * reason, the rule, the action, the ending, the backend's reply and durations. Replies are
 * counted by the SMTP adapter, where they are sent, not here.
 */
import type { Facts } from '../core/facts.ts';
import type { FailReply } from '../core/reply.ts';
import type { Action, Decision, Reason } from '../core/verdict.ts';
import type { Metrics } from '../observability/metrics.ts';
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
  const f = r.facts;
  metrics.authResults.inc({ method: 'spf', result: f.spf.result });
  if (f.dkim) {
    if (f.dkim.length === 0) metrics.authResults.inc({ method: 'dkim', result: 'none' });
    for (const sig of f.dkim) metrics.authResults.inc({ method: 'dkim', result: sig.result });
    if (f.arc) metrics.authResults.inc({ method: 'arc', result: f.arc.result });
    metrics.authResults.inc({ method: 'dmarc', result: f.dmarc?.result ?? 'none' });
  }
}

export function logDecision(state: SessionState, tx: Transaction, r: EndRecord): void {
  const f = r.facts;
  const would = r.decision?.wouldHave;
  const ending = r.ending;
  state.log.info({
    event: 'decision',
    client: { ip: f.client.ip, ptr: f.client.ptr, helo: f.client.helo, tls: f.client.tls, tier: f.client.tier },
    envelope: { from: tx.sender, to: f.envelope.recipients.length ? f.envelope.recipients : tx.recipients.map((x) => x.address) },
    from_domain: f.message?.fromDomain ?? null,
    message_id: f.message?.messageId ?? null,
    size: f.message?.size ?? null,
    auth: {
      spf: { result: f.spf.result, domain: f.spf.domain, identity: f.spf.identity, reason: f.spf.reason },
      dkim: f.dkim?.map((d) => ({ result: d.result, domain: d.domain, selector: d.selector, aligned: d.aligned, reason: d.reason })) ?? null,
      arc: f.arc ? { result: f.arc.result, reason: f.arc.reason } : null,
      dmarc: f.dmarc ? { result: f.dmarc.result, domain: f.dmarc.domain, policy: f.dmarc.policy, reason: f.dmarc.reason } : null,
    },
    stage: r.stage,
    ending: ending.kind,
    rule: r.decision?.enforced.rule ?? '',
    action: r.action,
    reason: r.reason,
    ...(would ? { would_have: { action: would.action, rule: would.rule } } : {}),
    reply: r.reply ? replyLine(r.reply) : undefined,
    backend: ending.kind === 'delivered' || ending.kind === 'backend-refused' ? replyLine(ending.answer) : undefined,
    ...('error' in ending ? { error: errorText(ending.error) } : {}),
    ...(ending.kind === 'quarantine-failed' ? { error: `quarantine mailbox unreachable at ${ending.step}: ${ending.detail}` } : {}),
    ms: { total: r.timing.totalMs, ...(r.timing.authMs !== undefined ? { auth: r.timing.authMs } : {}), ...(r.timing.relayMs !== undefined ? { relay: r.timing.relayMs } : {}) },
  }, 'decision');
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
