/**
 * The end of a transaction, whichever way it ends (endings.ts lists them). One function, so
 * that no exit can forget a step: it gives back or keeps the rate-limit tokens by one rule,
 * tells the backend connection, writes the one record (decision line and message metrics),
 * counts the ending, and learns once. A transaction ends exactly once; a second call (a race
 * between a disconnect and the stage that was answering) is a no-op.
 *
 * It does not write the reply: the stage that ends the transaction throws it (or returns the
 * 250) and the SMTP adapter sends and counts it.
 */
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import type { Facts } from '../core/facts.ts';
import { REPLIES } from '../core/reply.ts';
import type { Decision, Verdict } from '../core/verdict.ts';
import type { EndDeps } from './deps.ts';
import { actionOf, authenticatedDomain, backendEnd, keepsMessageTokens, outcomesOf, reasonOf, replyOf, type Ending } from './endings.ts';
import { countMessage, logAbandoned, logDecision } from './record.ts';
import type { SessionState, Transaction } from './state.ts';

export interface EndDetail {
  /** Everything known when it ended (DATA facts once the message was read). */
  readonly facts: Facts;
  /** The policy decision, when one was made. */
  readonly decision?: Decision | null;
  readonly timing?: { readonly authMs?: number; readonly relayMs?: number };
  /** The message as read (DATA), for a failure report's copy of its header section. */
  readonly message?: readonly Buffer[];
}

export function endTransaction(deps: EndDeps, state: SessionState, tx: Transaction, ending: Ending, detail: EndDetail): void {
  if (tx.ended) return;
  tx.ended = true;
  const stage = tx.inData ? 'data' as const : 'mail' as const;
  tx.inData = false;
  if (state.tx === tx) state.tx = null;

  if (!keepsMessageTokens(ending) && tx.reservations.message.length > 0) deps.release(tx.reservations.message.splice(0));
  if (tx.heldBytes > 0) {
    deps.budget.give(detail.facts.client.ip, tx.heldBytes);
    tx.heldBytes = 0;
  }

  const backend = tx.backend;
  tx.backend = null;
  if (backend) {
    // release() never rejects; not awaited, so a delivered message's 250 is not held up by
    // the backend's RSET or pooling (RFC 1047: keep the window for duplicates small)
    if (backendEnd(ending) === 'abort') backend.abort();
    else void backend.release();
  }

  const now = deps.clock.now();
  const totalMs = now - tx.startedAt;
  deps.metrics.transactionEndings.inc({ ending: ending.kind });
  if (ending.kind === 'abandoned') {
    logAbandoned(state, tx, ending.by, totalMs);
  } else {
    const decision = detail.decision ?? null;
    const verdict: Verdict | null = decision?.enforced ?? null;
    const record = {
      ending,
      facts: detail.facts,
      decision,
      action: actionOf(ending, verdict),
      reason: reasonOf(ending, verdict),
      reply: replyOf(ending),
      stage,
      timing: { totalMs, ...detail.timing },
    };
    try {
      countMessage(deps.metrics, record);
      logDecision(state, tx, record, deps.decisionFile);
    } catch (err) {
      // bookkeeping must never change the answer: a 451 after the backend's 250 would make the
      // sender retry a delivered message (a duplicate)
      state.log.error({ err }, 'recording the decision failed');
    }
    // DMARC aggregate reports count what finally happened to each message (src/reports)
    const would = decision?.wouldHave;
    if (stage === 'data') {
      const outcome = {
        facts: detail.facts, action: record.action, rule: verdict?.rule ?? '',
        ...(would ? { wouldHave: { action: would.action, rule: would.rule } } : {}),
        ...(decision?.override ? { override: decision.override } : {}),
      };
      deps.reports?.collect(outcome);
      // DMARC failure reports (RFC 9991), when the record asks: queued, sent after the reply
      const envid = tx.mailParams.ENVID;
      deps.failureReports?.offer({ ...outcome, message: detail.message ?? [], arrival: tx.startedAt, envelopeId: typeof envid === 'string' ? envid : undefined });
    }
    state.messages++;
  }

  const outcomes = outcomesOf(ending, detail.facts, tx.refused);
  if (outcomes.length > 0) {
    deps.reputation.learn({ ip: detail.facts.client.ip, authDomain: authenticatedDomain(detail.facts), outcomes }, now)
      .catch((err: unknown) => state.log.warn({ err: (err as Error).message }, 'reputation learn failed'));
  }
}

/**
 * Ends the transaction and throws what the client is told: its reply (the adapter sends and
 * counts it), or ClientGone when nobody is there to answer.
 */
export function endWith(deps: EndDeps, state: SessionState, tx: Transaction, ending: Exclude<Ending, { kind: 'delivered' }>, detail: EndDetail): never {
  endTransaction(deps, state, tx, ending, detail);
  const reply = replyOf(ending);
  if (!reply) throw new ClientGone();
  throw new SmtpReplyError(reply, reasonOf(ending, detail.decision?.enforced ?? null), state.id, 'error' in ending ? { cause: ending.error } : undefined);
}

/**
 * What a stage does with an error it did not throw on purpose (a bug, a dependency failing in a
 * way nobody foresaw): a reply or ClientGone goes on as it is; anything else is logged once,
 * with its stack, and ends the transaction as internal-error through the same path as every
 * other ending (tokens by the rule, bytes back, backend aborted: never a 250, never half a
 * relayed message; one decision line). The client gets 451 4.3.0.
 */
export function endUnexpected(deps: EndDeps, state: SessionState, tx: Transaction, err: unknown, detail: EndDetail): never {
  if (err instanceof SmtpReplyError || err instanceof ClientGone) throw err;
  state.log.error({ err }, 'unexpected error in transaction');
  // it ended already (the error came from its own end): nothing is left to give back
  if (tx.ended) throw new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id, { cause: err });
  endWith(deps, state, tx, { kind: 'internal-error', error: err }, detail);
}

/** The ending of a transaction whose client connection closed under it: did we close it, or the client? */
export function goneEnding(state: SessionState): Extract<Ending, { kind: 'client-gone' | 'data-timeout' | 'shutdown' }> {
  return state.closedBy === 'data-timeout' ? { kind: 'data-timeout' } : state.closedBy === 'shutdown' ? { kind: 'shutdown' } : { kind: 'client-gone' };
}
