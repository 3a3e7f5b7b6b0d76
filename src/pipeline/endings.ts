/**
 * Every way a transaction ends, and what each ending means, in one table: the reply the
 * client got, the action and reason recorded, whether the rate-limit tokens that paid for
 * the message stay spent, what the backend connection is told, and what the sender taught
 * us. src/pipeline/end.ts applies it; nothing else decides these things.
 *
 * Tokens (rate limits):
 * - recipient tokens paid for an RCPT the backend answered: that work was done, so they stay
 *   spent whatever follows (RSET, disconnect, a 4xx at the end). Directory harvesting cannot
 *   abandon its way around ipRecipients. (An RCPT the backend was never asked about gives its
 *   tokens back at once: src/pipeline/rcpt.ts.)
 * - message tokens (MAIL's message buckets, the authenticated domain's bucket at DATA) stay
 *   spent for a final outcome (delivered, or refused for good with a 5xx); on every other
 *   ending they go back: a 4xx means the client retries, and the retry pays.
 *
 * Learning (reputation): only from what the sender did, never from what we did to it. A rate
 * limit, a tempfail, a backend in trouble or a client that vanished teach nothing (B6: our
 * own throttling must not feed back into a worse tier and tighter limits).
 */
import type { Facts } from '../core/facts.ts';
import { REPLIES, type FailReply } from '../core/reply.ts';
import type { Action, Reason, Verdict } from '../core/verdict.ts';
import type { Limited, Outcome } from '../reputation/types.ts';
import { backendReply, limitReply } from './replies.ts';
import type { BackendReply } from './state.ts';

export type RefusingVerdict = Extract<Verdict, { action: 'reject' | 'tempfail' }>;

/** Why our own checks of the message as read refused it. */
export type MessageLimitReason = 'oversize' | 'bad-line-endings' | 'bad-header' | 'in-flight-budget';

export type Ending =
  /** The backend accepted the message (our 250 mirrors its reply). */
  | { readonly kind: 'delivered'; readonly answer: BackendReply }
  /** A policy rule refused it, at MAIL FROM or at the end of DATA. */
  | { readonly kind: 'policy'; readonly verdict: RefusingVerdict }
  /** The backend's final reply to the message was not 2xx. */
  | { readonly kind: 'backend-refused'; readonly answer: BackendReply }
  /** The authenticated domain's message bucket at the end of DATA. */
  | { readonly kind: 'rate-limited'; readonly limited: Limited }
  /** The message broke one of our limits (size, header, line endings) or has no readable header section. */
  | { readonly kind: 'message-limit'; readonly reply: FailReply; readonly reason: MessageLimitReason }
  /** We closed a client too slow to send its message (421 4.4.2 written out of band). */
  | { readonly kind: 'data-timeout' }
  /** The client went away during DATA, before we could answer. */
  | { readonly kind: 'client-gone' }
  /** The backend connection failed while the message was relayed. */
  | { readonly kind: 'backend-lost'; readonly error: unknown }
  /** A quarantine rule's mailbox could not be reached (the message is deferred, not lost). */
  | { readonly kind: 'quarantine-failed'; readonly step: 'open' | 'mail' | 'rcpt'; readonly detail: string }
  /** The gateway shut down with the transaction open. */
  | { readonly kind: 'shutdown' }
  /** The client left the transaction before DATA: RSET (or EHLO, STARTTLS), a new MAIL, a disconnect (QUIT too). */
  | { readonly kind: 'abandoned'; readonly by: 'rset' | 'mail' | 'disconnect' }
  /** Something we did not expect: 451 4.3.0, logged with its cause. */
  | { readonly kind: 'internal-error'; readonly error: unknown };

export type EndingKind = Ending['kind'];

/** Every kind, for the metric's help text and tests. */
export const ENDING_KINDS: readonly EndingKind[] = [
  'delivered', 'policy', 'backend-refused', 'rate-limited', 'message-limit', 'data-timeout', 'client-gone',
  'backend-lost', 'quarantine-failed', 'shutdown', 'abandoned', 'internal-error',
];

/**
 * The reply the client gets for this ending in the SMTP dialogue, or null when it gets none
 * there: delivered (the 250 is the backend's, src/pipeline/data.ts), abandoned (nothing was
 * asked), or a connection already closed (data-timeout and shutdown wrote theirs out of band).
 */
export function replyOf(ending: Ending): FailReply | null {
  switch (ending.kind) {
    case 'delivered': case 'abandoned': case 'client-gone': case 'data-timeout': case 'shutdown': return null;
    case 'policy': return ending.verdict.reply;
    case 'backend-refused': return backendReply(ending.answer, 'data');
    case 'rate-limited': return limitReply('data', ending.limited);
    case 'message-limit': return ending.reply;
    case 'backend-lost': case 'quarantine-failed': return REPLIES.backendUnavailable();
    case 'internal-error': return REPLIES.internalError();
  }
}

/** What happened to the message, in the words of policy actions (a backend 5xx is a reject). */
export function actionOf(ending: Ending, delivered: Verdict | null): Action {
  if (ending.kind === 'delivered') return delivered?.action ?? 'accept';
  const reply = replyOf(ending);
  return reply && reply.code >= 500 ? 'reject' : 'tempfail';
}

/** The reason label: the verdict's for a policy ending or a delivery, else the ending's own. */
export function reasonOf(ending: Ending, verdict: Verdict | null): Reason {
  switch (ending.kind) {
    case 'delivered': return verdict?.reason ?? 'default';
    case 'policy': return ending.verdict.reason;
    case 'backend-refused': return ending.answer.code >= 500 ? 'backend-rejected' : 'backend-unavailable';
    case 'rate-limited': return ending.limited.storeUnavailable ? 'internal-error' : 'rate-limited';
    case 'message-limit': return ending.reason;
    case 'backend-lost': case 'quarantine-failed': return 'backend-unavailable';
    case 'data-timeout': return 'timeout';
    case 'client-gone': case 'abandoned': return 'client-gone';
    case 'shutdown': return 'shutting-down';
    case 'internal-error': return 'internal-error';
  }
}

/** Message tokens stay spent only for a final outcome: delivered, or refused with a 5xx. */
export function keepsMessageTokens(ending: Ending): boolean {
  if (ending.kind === 'delivered') return true;
  const reply = replyOf(ending);
  return reply !== null && reply.code >= 500;
}

/**
 * What the backend connection is told: 'release' (RSET if needed, back to the pool) when the
 * dialogue with it is intact, 'abort' (close now) when it is not or nobody waits any more.
 */
export function backendEnd(ending: Ending): 'release' | 'abort' {
  switch (ending.kind) {
    case 'delivered': case 'policy': case 'backend-refused': case 'rate-limited': case 'message-limit': return 'release';
    case 'abandoned': return ending.by === 'disconnect' ? 'abort' : 'release';
    default: return 'abort';
  }
}

/**
 * The domain that may earn or spend reputation: the RFC5322.From domain when DMARC passed,
 * i.e. an aligned DKIM d= or SPF-pass domain vouches for it. Never an unauthenticated From.
 */
export function authenticatedDomain(facts: Facts): string | null {
  return facts.dmarc?.result === 'pass' && facts.message?.fromDomain ? facts.message.fromDomain : null;
}

/** What the sender taught us in this transaction (empty: nothing certain). */
export function outcomesOf(ending: Ending, facts: Facts, refused: { backend: number; protocol: number }): Array<{ outcome: Outcome; count?: number }> {
  const out: Array<{ outcome: Outcome; count?: number }> = [];
  const final = finalOutcome(ending, facts);
  if (final) out.push({ outcome: final });
  if (refused.backend > 0) out.push({ outcome: 'recipient-refused', count: refused.backend });
  if (refused.protocol > 0) out.push({ outcome: 'protocol-error', count: refused.protocol });
  return out;
}

function finalOutcome(ending: Ending, facts: Facts): Outcome | null {
  switch (ending.kind) {
    case 'delivered': return authenticatedDomain(facts) ? 'delivered-aligned' : 'delivered';
    case 'message-limit': return ending.reply.code >= 500 ? 'protocol-error' : null; // our memory is not the sender's fault
    case 'policy': {
      if (ending.verdict.action !== 'reject') return null; // a tempfail is not certain
      const r = ending.verdict.reason;
      return r === 'dmarc-policy' || r === 'spf-fail' || r === 'dkim-required' ? 'auth-failed' : 'policy-rejected';
    }
    default: return null;
  }
}
