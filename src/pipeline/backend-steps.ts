/**
 * The backend side of a transaction as the stages drive it: opened at the first recipient
 * with MAIL FROM mirrored, every call guarded so that connection-level trouble is 451 4.4.1
 * (never a 250, never a 5xx) and marks the transaction's backend as lost.
 */
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import { REPLIES } from '../core/reply.ts';
import type { PipelineDeps } from './deps.ts';
import { backendReply, replyLine } from './replies.ts';
import type { BackendReply, BackendTx, SessionState, Transaction } from './state.ts';

/** Runs a backend call; connection-level failures become 451 4.4.1 and the transaction's backend is dropped. */
export async function backendCall<T>(state: SessionState, tx: Transaction, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SmtpReplyError || err instanceof ClientGone) throw err;
    const kind = (err as { kind?: string }).kind ?? 'error';
    state.log.warn({ err: (err as Error).message, kind }, 'backend unavailable');
    // The transaction stays (its accepted recipients are the client's to retry) but has no
    // backend any more: what follows in it gets 4.4.1 too.
    tx.backendLost = true;
    tx.backend?.abort();
    tx.backend = null;
    throw new SmtpReplyError(REPLIES.backendUnavailable(), 'backend-unavailable', state.id, { cause: err });
  }
}

/**
 * The client may disconnect (or RSET) while we wait for the backend: its transaction is then
 * over and nobody else would release this connection. Drop it, and stop here.
 */
export function abandonIfGone(state: SessionState, tx: Transaction, backend: BackendTx): void {
  if (state.tx === tx && !tx.ended && !state.closed) return;
  backend.abort();
  throw new ClientGone('the transaction ended while the backend was answering');
}

const identity = (state: SessionState): Parameters<PipelineDeps['openBackend']>[0] => ({ ip: state.ip, ptr: state.ptr, helo: state.helo, esmtp: state.esmtp });

/** Opens the backend transaction and mirrors MAIL FROM, once per transaction. */
export async function ensureBackend(deps: Pick<PipelineDeps, 'openBackend'>, state: SessionState, tx: Transaction): Promise<BackendTx> {
  if (tx.backend) return tx.backend;
  const backend = await backendCall(state, tx, () => deps.openBackend(identity(state)));
  abandonIfGone(state, tx, backend);
  const answer = await backendCall(state, tx, () => backend.mail(tx.sender, tx.mailParams)).catch((err: unknown) => {
    backend.abort();
    throw err;
  });
  abandonIfGone(state, tx, backend);
  if (answer.code >= 300) {
    // The backend refuses the sender: answer this RCPT with its reply (as Postfix does with
    // smtpd_delay_reject) and try MAIL again at the next RCPT.
    void backend.release();
    state.log.info({ backend: replyLine(answer) }, 'sender refused by backend');
    throw new SmtpReplyError(backendReply(answer, 'rcpt'), 'backend-rejected', state.id);
  }
  tx.backend = backend;
  return backend;
}

/**
 * A quarantine rule with a mailbox sends the message there instead of to its recipients: the
 * transaction's backend connection is given back and a new one carries MAIL, the mailbox
 * and the message. Failure is reported as which step failed, never thrown as a reply: the
 * caller ends the transaction (quarantine-failed).
 */
export async function openQuarantine(deps: Pick<PipelineDeps, 'openBackend'>, state: SessionState, tx: Transaction, mailbox: string):
  Promise<{ ok: true; backend: BackendTx } | { ok: false; step: 'open' | 'mail' | 'rcpt'; detail: string }> {
  if (tx.backend) void tx.backend.release();
  tx.backend = null;
  let backend: BackendTx;
  try {
    backend = await deps.openBackend(identity(state));
  } catch (err) {
    return { ok: false, step: 'open', detail: (err as Error).message };
  }
  tx.backend = backend;
  const step = async (call: () => Promise<BackendReply>): Promise<string | null> => {
    try {
      const answer = await call();
      return answer.code < 300 ? null : replyLine(answer);
    } catch (err) {
      return (err as Error).message;
    }
  };
  const mail = await step(() => backend.mail(tx.sender, tx.mailParams));
  if (mail !== null) return { ok: false, step: 'mail', detail: mail };
  const rcpt = await step(() => backend.rcpt(mailbox, {}));
  if (rcpt !== null) return { ok: false, step: 'rcpt', detail: rcpt };
  return { ok: true, backend };
}
