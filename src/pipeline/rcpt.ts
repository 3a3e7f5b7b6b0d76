/**
 * RCPT TO: only our own domains and nothing a backend could read as a route; then the
 * backend is asked before we answer (before-queue: Postfix refuses unknown mailboxes here,
 * and a recipient we said 250 to must be one the backend takes).
 *
 * An unexpected error in this step (a bug) does not end the transaction: the adapter answers
 * this RCPT 451 4.3.0 and logs it, the recipient's tokens are settled by askBackend's `finally`,
 * a failing backend call marks the backend lost (backend-steps.ts), and the recipients already
 * accepted stay the client's to send; the transaction ends later like any other.
 */
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import { REPLIES } from '../core/reply.ts';
import { backendCall, ensureBackend } from './backend-steps.ts';
import type { RcptDeps } from './deps.ts';
import { takeRcpt } from './limits.ts';
import { checkRecipient } from './recipient.ts';
import { backendReply, replyLine } from './replies.ts';
import type { Params, SessionState, Transaction } from './state.ts';

export async function rcptStage(deps: RcptDeps, state: SessionState, address: string, params: Params): Promise<void> {
  const tx = state.tx;
  if (!tx) throw new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id);
  const check = checkRecipient(address, deps.domains, tx.mailParams.SMTPUTF8 === true);
  if (!check.ok) {
    const r = check.why === 'relay-denied' ? REPLIES.relayDenied() : check.why === 'routing-syntax' ? REPLIES.routingSyntax()
      : check.why === 'non-ascii' ? REPLIES.nonAsciiAddress() : REPLIES.badRecipient();
    state.log.info({ rcpt: address, why: check.why }, 'recipient refused');
    tx.refused.protocol++; // learnt once, at the end of the transaction
    throw new SmtpReplyError(r, check.why === 'non-ascii' ? 'bad-address' : check.why, state.id);
  }
  // RFC 5321 §4.5.3.1.10 allows a repeated recipient; it is one delivery (Postfix dedups too).
  if (tx.recipients.some((r) => r.address.toLowerCase() === check.address.toLowerCase())) return;
  if (tx.recipients.length >= deps.settings.maxRecipients) {
    throw new SmtpReplyError(REPLIES.tooManyRecipients(deps.settings.maxRecipients), 'too-many-recipients', state.id);
  }
  if (tx.backendLost) throw new SmtpReplyError(REPLIES.backendUnavailable(), 'backend-unavailable', state.id);
  // A mailbox the backend refused a moment ago is refused again without asking it: retries
  // and harvesting cost the backend nothing, and its per-connection error count stays low.
  const known = deps.recipientCache.get(check.address);
  if (known) {
    tx.refused.backend++;
    throw new SmtpReplyError(backendReply(known, 'rcpt'), 'backend-rejected', state.id);
  }
  // Postfix slows down from its 10th error in a session and hangs up at the 20th, which would
  // defer this whole transaction: past our budget, the rest is deferred instead (452: the
  // client sends those recipients in a later transaction, RFC 5321 §4.5.3.1.10).
  if (tx.refused.backend >= deps.settings.maxRcptErrorsPerTransaction) {
    throw new SmtpReplyError(REPLIES.tooManyRefused(), 'too-many-recipients', state.id);
  }
  await askBackend(deps, state, tx, check.address, params);
}

/**
 * Takes the recipient's tokens, then asks the backend. Tokens of a recipient the backend was
 * asked about stay spent (its work was done: endings.ts); if it never was, they go back now.
 */
async function askBackend(deps: RcptDeps, state: SessionState, tx: Transaction, address: string, params: Params): Promise<void> {
  const reservation = await takeRcpt(deps, state, address);
  let asked = false;
  try {
    if (tx.ended || state.tx !== tx || state.closed) throw new ClientGone();
    const backend = await ensureBackend(deps, state, tx);
    asked = true;
    const answer = await backendCall(state, tx, () => backend.rcpt(address, params));
    if (answer.code >= 300) {
      if (answer.code >= 500) {
        tx.refused.backend++;
        deps.recipientCache.set(address, answer);
      }
      state.log.info({ rcpt: address, backend: replyLine(answer) }, 'recipient refused by backend');
      throw new SmtpReplyError(backendReply(answer, 'rcpt'), 'backend-rejected', state.id);
    }
    tx.recipients.push({ address, params });
  } finally {
    if (asked) tx.reservations.recipients.push(reservation);
    else deps.release([reservation]);
  }
}
