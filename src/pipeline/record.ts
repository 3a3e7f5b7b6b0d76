/**
 * The end of every transaction that reached a decision: metrics and the one `decision` log
 * line (DESIGN.md "Observability"): who, what, every auth result with its reason, the rule,
 * the action, the backend's reply and durations.
 */
import type { Facts } from '../core/facts.ts';
import type { FailReply } from '../core/reply.ts';
import type { Action, Decision, Reason } from '../core/verdict.ts';
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
  const f = o.facts;
  metrics.authResults.inc({ method: 'spf', result: f.spf.result });
  if (o.stage === 'data' && f.dkim) {
    if (f.dkim.length === 0) metrics.authResults.inc({ method: 'dkim', result: 'none' });
    for (const sig of f.dkim) metrics.authResults.inc({ method: 'dkim', result: sig.result });
    if (f.arc) metrics.authResults.inc({ method: 'arc', result: f.arc.result });
    metrics.authResults.inc({ method: 'dmarc', result: f.dmarc?.result ?? 'none' });
  }

  state.log.info({
    event: 'decision',
    client: { ip: f.client.ip, ptr: f.client.ptr, helo: f.client.helo, tls: f.client.tls, tier: f.client.tier },
    envelope: { from: tx.sender, to: f.envelope.recipients.length ? f.envelope.recipients : tx.recipients.map((r) => r.address) },
    from_domain: f.message?.fromDomain ?? null,
    ...(f.message?.fromFields !== undefined ? { from_count: { fields: f.message.fromFields, addresses: f.message.fromAddresses ?? null } } : {}),
    message_id: f.message?.messageId ?? null,
    size: f.message?.size ?? null,
    auth: {
      spf: { result: f.spf.result, domain: f.spf.domain, identity: f.spf.identity, reason: f.spf.reason },
      dkim: f.dkim?.map((d) => ({ result: d.result, domain: d.domain, selector: d.selector, aligned: d.aligned, reason: d.reason })) ?? null,
      arc: f.arc ? { result: f.arc.result, reason: f.arc.reason } : null,
      dmarc: f.dmarc ? { result: f.dmarc.result, domain: f.dmarc.domain, policy: f.dmarc.policy, reason: f.dmarc.reason } : null,
    },
    stage: o.stage,
    rule,
    action,
    reason,
    ...(would ? { would_have: { action: would.action, rule: would.rule } } : {}),
    reply: o.reply ? `${o.reply.code} ${o.reply.enhanced} ${o.reply.text}` : undefined,
    backend: o.backend ? `${o.backend.code} ${o.backend.enhanced ?? ''} ${o.backend.text}`.replace(/\s+/g, ' ') : undefined,
    ...(o.error ? { error: (o.error as Error).message } : {}),
    ms: { total: deps.clock.now() - tx.startedAt, ...o.timing },
  }, 'decision');
}
