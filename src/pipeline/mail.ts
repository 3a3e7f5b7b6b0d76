/**
 * MAIL FROM: the sender's syntax, SPF (DESIGN: evaluated here, kept for DMARC), the policy as
 * far as it can decide without the message (three-valued, src/policy/decide.ts), and the
 * sender's message rate. The transaction begins here; a policy refusal ends it at once, and so
 * does an unexpected error once it has begun (internal-error, src/pipeline/end.ts).
 */
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import type { Facts } from '../core/facts.ts';
import { REPLIES } from '../core/reply.ts';
import type { EndDeps, MailDeps } from './deps.ts';
import { endTransaction, endUnexpected } from './end.ts';
import { currentTier, takeMail } from './limits.ts';
import { addressProblem } from './address-syntax.ts';
import { normaliseDomain } from '../core/domain.ts';
import type { Params, SessionState, Transaction } from './state.ts';

/**
 * A transaction the client left behind before DATA ends as abandoned: RSET (EHLO and STARTTLS
 * reset too), a new MAIL, or the connection closing (then it is a shutdown if we closed it
 * draining). A transaction in DATA is left alone: the DATA stage ends it, whatever happens to
 * the client meanwhile (a message already on its way to the backend is not abandoned).
 */
export function abandonTransaction(deps: EndDeps, state: SessionState, by: 'rset' | 'mail' | 'disconnect'): void {
  const tx = state.tx;
  if (!tx || tx.inData) return;
  const ending = by === 'disconnect' && state.closedBy === 'shutdown' ? { kind: 'shutdown' as const } : { kind: 'abandoned' as const, by };
  endTransaction(deps, state, tx, ending, { facts: factsOf(state, tx) });
}

export async function mailStage(deps: MailDeps, state: SessionState, seq: number, sender: string, params: Params): Promise<void> {
  abandonTransaction(deps, state, 'mail');
  const at = sender.lastIndexOf('@');
  const rawDomain = sender.slice(at + 1);
  // An address literal (user@[192.0.2.1]) is a valid sender (RFC 5321 §4.1.3); SPF gives none.
  const senderDomain = sender === '' ? '' : rawDomain.startsWith('[') ? rawDomain.toLowerCase() : normaliseDomain(rawDomain);
  const problem = sender === '' ? null : addressProblem(sender, params.SMTPUTF8 === true);
  if (problem === 'non-ascii') throw new SmtpReplyError(REPLIES.nonAsciiAddress(), 'bad-address', state.id);
  if (sender !== '' && (at <= 0 || !senderDomain || problem)) throw new SmtpReplyError(REPLIES.badSender(), 'bad-address', state.id);

  // No room for another message in memory: defer before the client starts uploading one
  // (Postfix answers 452 4.3.1 at MAIL when its queue file system is short of space).
  if (deps.budget.full(state.ip)) {
    deps.metrics.inflightRefusals.inc({ stage: 'mail' });
    throw new SmtpReplyError(REPLIES.insufficientStorage(), 'in-flight-budget', state.id);
  }
  // The tier first: after XCLIENT this may be another client than the one that connected.
  await currentTier(deps, state);
  const spf = await deps.checkSpf({ ip: state.ip, helo: state.helo, sender });
  if (state.closed) throw new ClientGone(); // the client left meanwhile
  const tx: Transaction = {
    seq, startedAt: deps.clock.now(), sender, senderDomain, mailParams: params, spf, recipients: [], backend: null,
    backendLost: false, refused: { backend: 0, protocol: 0 }, reservations: { message: [], recipients: [] }, heldBytes: 0, inData: false, ended: false,
  };
  state.tx = tx;
  try {
    await begin(deps, state, tx);
  } catch (err) {
    endUnexpected(deps, state, tx, err, { facts: factsOf(state, tx) });
  }
}

/** The policy as far as it can decide at MAIL FROM, then the sender's message rate. */
async function begin(deps: MailDeps, state: SessionState, tx: Transaction): Promise<void> {
  const facts = factsOf(state, tx);
  const decision = deps.decide(facts, 'mail');
  const verdict = decision?.enforced;
  if (verdict && (verdict.action === 'reject' || verdict.action === 'tempfail')) {
    endTransaction(deps, state, tx, { kind: 'policy', verdict }, { facts, decision });
    throw new SmtpReplyError(verdict.reply, verdict.reason, state.id);
  }
  let reservation;
  try {
    reservation = await takeMail(deps, state);
  } catch (err) {
    // refused: not a transaction yet, the client was told to slow down before it began
    if (err instanceof SmtpReplyError && state.tx === tx) state.tx = null;
    throw err;
  }
  if (tx.ended || state.tx !== tx || state.closed) {
    // the client left (or reset) while the store answered: nobody else would give these back
    deps.release([reservation]);
    throw new ClientGone();
  }
  tx.reservations.message.push(reservation);
}

export function factsOf(state: SessionState, tx: Transaction): Facts {
  return {
    client: { ip: state.ip, ptr: state.ptr, helo: state.helo, tls: state.tls, tier: state.tier },
    envelope: { sender: tx.sender, senderDomain: tx.senderDomain, recipients: tx.recipients.map((r) => r.address) },
    spf: tx.spf.facts,
  };
}
