/**
 * DATA: read the message once (kept for relaying, streamed into verification), check our
 * limits, decide, take the authenticated domain's token, add our headers, relay. The client's
 * 250 is the backend's 250 (before-queue); every other way out ends the transaction through
 * endWith (src/pipeline/end.ts), which throws the reply, an unexpected error included
 * (endUnexpected: internal-error).
 */
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import type { Facts } from '../core/facts.ts';
import { REPLIES, type FailReply } from '../core/reply.ts';
import type { Decision, HeaderField, Verdict } from '../core/verdict.ts';
import { openQuarantine } from './backend-steps.ts';
import type { DataDeps, MessageAuth } from './deps.ts';
import { endTransaction, endUnexpected, endWith, goneEnding, type EndDetail } from './end.ts';
import { authenticatedDomain, type MessageLimitReason } from './endings.ts';
import { limitError, takeData } from './limits.ts';
import { factsOf } from './mail.ts';
import { readMessage, type DataStream, type ReadMessage } from './read-message.ts';
import { deliveredText } from './replies.ts';
import type { BackendReply, BackendTx, SessionState, Transaction } from './state.ts';

const ACCEPT: Decision = { enforced: { action: 'accept', rule: '', reason: 'default' } };

export async function dataStage(deps: DataDeps, state: SessionState, stream: DataStream): Promise<string> {
  const tx = state.tx;
  if (!tx || tx.recipients.length === 0) {
    stream.resume();
    throw new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id);
  }
  // From the DATA command on, the transaction is this stage's to end (a disconnect leaves it
  // alone) and its record says stage "data", whichever way it ends.
  tx.inData = true;
  // what is known so far, for the record of an ending nobody planned (endUnexpected)
  const known: { detail: EndDetail } = { detail: { facts: factsOf(state, tx) } };
  try {
    return await receive(deps, state, tx, stream, known);
  } catch (err) {
    endUnexpected(deps, state, tx, err, known.detail);
  }
}

async function receive(deps: DataDeps, state: SessionState, tx: Transaction, stream: DataStream, known: { detail: EndDetail }): Promise<string> {
  if (!tx.backend) {
    stream.resume();
    endWith(deps, state, tx, { kind: 'backend-lost', error: new Error('the backend connection was lost earlier in the transaction') }, known.detail);
  }
  const started = deps.clock.now();
  let read: ReadMessage;
  try {
    read = await readMessage(deps, state, tx, stream);
  } catch (err) {
    if (!(err instanceof ClientGone)) throw err;
    endWith(deps, state, tx, goneEnding(state), known.detail);
  }
  const refused = checkMessage(deps, read);
  if (refused) {
    read.auth.catch(() => undefined);
    endWith(deps, state, tx, { kind: 'message-limit', ...refused }, known.detail);
  }

  const auth = await read.auth;
  const timing = { authMs: deps.clock.now() - started };
  const facts = await messageFacts(deps, state, tx, read.message, auth);
  known.detail = { facts, timing, message: read.message.chunks };
  const decision = deps.decide(facts, 'data') ?? ACCEPT;
  const verdict = decision.enforced;
  const detail = { facts, decision, timing, message: read.message.chunks };
  known.detail = detail;
  if (verdict.action === 'reject' || verdict.action === 'tempfail') endWith(deps, state, tx, { kind: 'policy', verdict }, detail);

  const limited = await takeData(deps, authenticatedDomain(facts));
  if (!limited.ok) {
    endTransaction(deps, state, tx, { kind: 'rate-limited', limited }, detail);
    throw limitError(state, 'data', limited);
  }
  tx.reservations.message.push(limited.reservation);

  const outgoing = deps.message.rewrite(read.message.chunks, deps.settings.hostname, [...verdictHeaders(verdict), { name: 'Authentication-Results', value: auth.authResults }, received(deps, state, tx)]);
  const backend = await relayTarget(deps, state, tx, verdict, detail);
  // Nobody waits for the answer any more: relaying now would deliver a message the client
  // will send again (RFC 1047). Before the backend has it, it is not too late to stop.
  if (state.closed) endWith(deps, state, tx, goneEnding(state), detail);
  const relayStart = deps.clock.now();
  let answer: BackendReply;
  try {
    answer = await backend.data(outgoing);
  } catch (err) {
    endWith(deps, state, tx, { kind: 'backend-lost', error: err }, detail);
  }
  const relayed = { ...detail, timing: { ...timing, relayMs: deps.clock.now() - relayStart } };
  if (answer.code >= 300) endWith(deps, state, tx, { kind: 'backend-refused', answer }, relayed);
  endTransaction(deps, state, tx, { kind: 'delivered', answer }, relayed);
  return deliveredText(answer, state.id);
}

/** Our limits on the message as read: size, header size and syntax, bare line endings. */
function checkMessage(deps: DataDeps, read: ReadMessage): { reply: FailReply; reason: MessageLimitReason } | null {
  const { maxMessageSize, bareLineEndings } = deps.settings;
  // smtp-server answers 552 itself once it has counted the bytes; the ending records it
  if (read.oversize) return { reply: REPLIES.oversize(maxMessageSize), reason: 'oversize' };
  if (read.overBudget) {
    deps.metrics.inflightRefusals.inc({ stage: 'data' });
    return { reply: REPLIES.insufficientStorage(), reason: 'in-flight-budget' };
  }
  // the header guard stopped feeding the verifier at this limit (message/header-guard.ts)
  if (read.headerLimit) return { reply: REPLIES.headerLimit(read.headerLimit), reason: 'oversize' };
  // nor fed it a header section starting with whitespace (it would continue our Received)
  if (read.headerMalformed) return { reply: REPLIES.headerStartsWithWhitespace(), reason: 'bad-header' };
  if (read.repaired > 0 && bareLineEndings === 'reject') return { reply: REPLIES.bareLineEnding(), reason: 'bad-line-endings' };
  return null;
}

async function messageFacts(deps: DataDeps, state: SessionState, tx: Transaction, message: ReadMessage['message'], auth: MessageAuth): Promise<Facts> {
  const fingerprint = deps.message.fingerprint({ sender: tx.sender, recipients: tx.recipients.map((r) => r.address), messageId: auth.messageId, body: auth.messageId ? null : message.chunks });
  const firstSeenMs = await deps.firstSeen(fingerprint);
  return {
    ...factsOf(state, tx),
    message: {
      fromDomain: auth.fromDomain, messageId: auth.messageId, size: message.size, firstSeenSeconds: Math.floor(firstSeenMs / 1000),
      ...(auth.fromFields !== undefined ? { fromFields: auth.fromFields } : {}),
      ...(auth.fromAddresses !== undefined ? { fromAddresses: auth.fromAddresses } : {}),
    },
    dkim: auth.dkim,
    arc: auth.arc,
    ...(auth.dmarc ? { dmarc: auth.dmarc } : {}),
  };
}

function received(deps: DataDeps, state: SessionState, tx: Transaction): HeaderField {
  return deps.message.received({
    helo: state.helo, ehlo: state.esmtp, ptr: state.ptr, ip: state.ip, hostname: deps.settings.hostname, sessionId: state.id,
    tls: state.tlsInfo, smtputf8: tx.mailParams.SMTPUTF8 === true,
    recipients: tx.recipients.map((r) => r.address), date: new Date(deps.clock.now()),
  });
}

function verdictHeaders(verdict: Verdict): HeaderField[] {
  return verdict.action === 'tag' || verdict.action === 'quarantine' ? [...verdict.headers] : [];
}

/** The transaction's backend, or for a quarantine rule with a mailbox a new one addressed to it. */
async function relayTarget(deps: DataDeps, state: SessionState, tx: Transaction, verdict: Verdict, detail: EndDetail): Promise<BackendTx> {
  if (verdict.action !== 'quarantine' || !verdict.mailbox) return tx.backend!;
  const q = await openQuarantine(deps, state, tx, verdict.mailbox);
  if (q.ok) return q.backend;
  state.log.error({ step: q.step, mailbox: verdict.mailbox, detail: q.detail }, q.step === 'rcpt' ? 'quarantine mailbox refused by backend' : 'backend unavailable for the quarantine mailbox');
  endWith(deps, state, tx, { kind: 'quarantine-failed', step: q.step, detail: q.detail }, detail);
}
