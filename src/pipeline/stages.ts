/**
 * The transaction stages, called by the SMTP adapter. Each either returns (go on) or throws
 * SmtpReplyError (the adapter turns it into the reply). Any other exception becomes
 * 451 4.3.0 in the adapter: nothing unexpected ever yields a 250.
 *
 * Before-queue: the backend sees MAIL at our first accepted RCPT, each RCPT before we answer
 * it, and DATA only after our own checks; the client's final 250 is the backend's 250.
 */
import type { Readable } from 'node:stream';
import { SmtpReplyError } from '../core/errors.ts';
import type { Facts } from '../core/facts.ts';
import { REPLIES, type FailReply, type PermCode, type PermReply, type TempCode, type TempReply } from '../core/reply.ts';
import type { Decision, HeaderField, Verdict } from '../core/verdict.ts';
import type { HeaderBreach } from '../message/header-guard.ts';
import { replyClass } from '../observability/metrics.ts';
import type { PipelineDeps } from './deps.ts';
import { checkRecipient, normaliseDomain } from './recipient.ts';
import { addressProblem } from './address-syntax.ts';
import { closeTransaction, type BackendReply, type BackendTx, type Params, type SessionState, type Transaction } from './state.ts';
import { logDecision, type Outcome } from './record.ts';
import { authenticatedDomain, learn, limitData, limitMail, limitRcpt } from './limits.ts';

export async function mailStage(deps: PipelineDeps, state: SessionState, seq: number, sender: string, params: Params): Promise<void> {
  await closeTransaction(state, 'release'); // a transaction the client abandoned (RSET, new MAIL)
  const at = sender.lastIndexOf('@');
  const rawDomain = sender.slice(at + 1);
  // An address literal (user@[192.0.2.1]) is a valid sender (RFC 5321 §4.1.3); SPF gives none.
  const senderDomain = sender === '' ? '' : rawDomain.startsWith('[') ? rawDomain.toLowerCase() : normaliseDomain(rawDomain);
  const problem = sender === '' ? null : addressProblem(sender, params.SMTPUTF8 === true);
  if (problem === 'non-ascii') throw reply(deps, state, 'mail', REPLIES.nonAsciiAddress(), 'bad-address');
  if (sender !== '' && (at <= 0 || !senderDomain || problem)) {
    throw reply(deps, state, 'mail', REPLIES.badSender(), 'bad-address');
  }
  const spf = await deps.checkSpf({ ip: state.ip, helo: state.helo, sender });
  if (state.closed) throw new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id); // the client left meanwhile
  const tx: Transaction = { seq, startedAt: deps.clock.now(), sender, senderDomain, mailParams: params, spf, recipients: [], backend: null, backendLost: false, rcptRefused: 0, reservations: [], completed: false };
  state.tx = tx;
  const decision = deps.decide(factsOf(state, tx), 'mail');
  if (decision && (decision.enforced.action === 'reject' || decision.enforced.action === 'tempfail')) {
    const verdict = decision.enforced;
    state.tx = null;
    record(deps, state, tx, { decision, facts: factsOf(state, tx), reply: verdict.reply, stage: 'mail' });
    throw new SmtpReplyError(verdict.reply, verdict.reason, state.id);
  }
  await limitMail(deps, state, tx).catch((err: unknown) => {
    state.tx = null;
    throw err;
  });
  deps.metrics.replies.inc({ stage: 'mail', class: '2xx' });
}

export async function rcptStage(deps: PipelineDeps, state: SessionState, address: string, params: Params): Promise<void> {
  const tx = state.tx;
  if (!tx) throw reply(deps, state, 'rcpt', REPLIES.internalError(), 'internal-error');
  const check = checkRecipient(address, deps.domains, tx.mailParams.SMTPUTF8 === true);
  if (!check.ok) {
    const r = check.why === 'relay-denied' ? REPLIES.relayDenied() : check.why === 'routing-syntax' ? REPLIES.routingSyntax()
      : check.why === 'non-ascii' ? REPLIES.nonAsciiAddress() : REPLIES.badRecipient();
    state.log.info({ rcpt: address, why: check.why }, 'recipient refused');
    learn(deps, state.ip, null, 'protocol-error');
    throw reply(deps, state, 'rcpt', r, check.why === 'non-ascii' ? 'bad-address' : check.why);
  }
  // RFC 5321 §4.5.3.1.10 allows a repeated recipient; it is one delivery (Postfix dedups too).
  if (tx.recipients.some((r) => r.address.toLowerCase() === check.address.toLowerCase())) {
    deps.metrics.replies.inc({ stage: 'rcpt', class: '2xx' });
    return;
  }
  if (tx.recipients.length >= deps.config.limits.maxRecipients) {
    throw reply(deps, state, 'rcpt', REPLIES.tooManyRecipients(deps.config.limits.maxRecipients), 'too-many-recipients');
  }
  if (tx.backendLost) throw reply(deps, state, 'rcpt', REPLIES.backendUnavailable(), 'backend-unavailable');
  // A recipient the backend refused a moment ago is refused again without asking it: retries
  // and harvesting cost the backend nothing, and its per-connection error count stays low.
  const known = deps.recipientCache.get(check.address);
  if (known) {
    tx.rcptRefused++;
    learn(deps, state.ip, null, 'recipient-refused');
    throw reply(deps, state, 'rcpt', mirror(known, 'rcpt'), 'backend-rejected');
  }
  // Postfix slows down from its 10th error in a session and hangs up at the 20th, which would
  // defer this whole transaction: past our budget, the rest is deferred instead (452: the
  // client sends those recipients in a later transaction, RFC 5321 §4.5.3.1.10).
  if (tx.rcptRefused >= deps.config.backend.maxRcptErrorsPerTransaction) {
    throw reply(deps, state, 'rcpt', REPLIES.tooManyRefused(), 'too-many-recipients');
  }
  await limitRcpt(deps, state, tx, check.address);
  const backend = await ensureBackend(deps, state, tx);
  const answer = await backendCall(deps, state, () => backend.rcpt(check.address, params), 'rcpt');
  if (answer.code >= 300) {
    tx.rcptRefused++;
    if (answer.code >= 500) learn(deps, state.ip, null, 'recipient-refused');
    if (answer.code >= 500) deps.recipientCache.set(check.address, answer);
    state.log.info({ rcpt: check.address, backend: replyLine(answer) }, 'recipient refused by backend');
    throw reply(deps, state, 'rcpt', mirror(answer, 'rcpt'), 'backend-rejected');
  }
  tx.recipients.push({ address: check.address, params });
  deps.metrics.replies.inc({ stage: 'rcpt', class: '2xx' });
}

/** Opens the backend transaction and mirrors MAIL FROM, once per transaction. */
async function ensureBackend(deps: PipelineDeps, state: SessionState, tx: Transaction): Promise<BackendTx> {
  if (tx.backend) return tx.backend;
  const backend = await backendCall(deps, state, () => deps.openBackend({ ip: state.ip, ptr: state.ptr, helo: state.helo, esmtp: state.esmtp }), 'rcpt');
  abandonIfGone(state, tx, backend);
  const answer = await backendCall(deps, state, () => backend.mail(tx.sender, tx.mailParams), 'rcpt').catch((err: unknown) => {
    backend.abort();
    throw err;
  });
  abandonIfGone(state, tx, backend);
  if (answer.code >= 300) {
    // The backend refuses the sender: answer this RCPT with its reply (as Postfix does with
    // smtpd_delay_reject) and try MAIL again at the next RCPT.
    await backend.release();
    state.log.info({ backend: replyLine(answer) }, 'sender refused by backend');
    throw reply(deps, state, 'rcpt', mirror(answer, 'rcpt'), 'backend-rejected');
  }
  tx.backend = backend;
  return backend;
}

/**
 * The client may disconnect (or RSET) while we wait for the backend: its transaction is then
 * closed and nobody else would release this connection. Drop it, and stop here.
 */
function abandonIfGone(state: SessionState, tx: Transaction, backend: BackendTx): void {
  if (state.tx === tx && !state.closed) return;
  backend.abort();
  throw new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id);
}

export async function dataStage(deps: PipelineDeps, state: SessionState, stream: Readable & { sizeExceeded?: boolean }): Promise<string> {
  const tx = state.tx;
  if (!tx?.backend || tx.recipients.length === 0) {
    stream.resume();
    if (tx?.backendLost) throw reply(deps, state, 'data', REPLIES.backendUnavailable(), 'backend-unavailable');
    throw reply(deps, state, 'data', REPLIES.internalError(), 'internal-error');
  }
  const started = deps.clock.now();
  const { message, repaired, oversize, headerLimit } = await readMessage(deps, state, tx, stream);
  const base = factsOf(state, tx);

  // Rate-limit tokens stay spent for a message that was delivered or refused for good (5xx);
  // on any 4xx (ours or the backend's) they are given back: the retry pays, not both.
  if (oversize) {
    // smtp-server answers 552 itself once it has counted the bytes; we only record it.
    tx.completed = true;
    await closeTransaction(state, 'release');
    const r = REPLIES.oversize(deps.config.limits.maxMessageSize);
    record(deps, state, tx, { facts: base, reply: r, stage: 'data', reason: 'oversize' });
    throw new SmtpReplyError(r, 'oversize', state.id);
  }
  if (headerLimit) {
    // the header guard stopped feeding the verifier at this limit (message/header-guard.ts)
    tx.completed = true;
    await closeTransaction(state, 'release');
    const r = REPLIES.headerLimit(headerLimit);
    record(deps, state, tx, { facts: base, reply: r, stage: 'data', reason: 'oversize' });
    throw new SmtpReplyError(r, 'oversize', state.id);
  }
  if (repaired > 0 && deps.config.limits.bareLineEndings === 'reject') {
    tx.completed = true;
    await closeTransaction(state, 'release');
    message.auth.catch(() => undefined);
    const r = REPLIES.bareLineEnding();
    record(deps, state, tx, { facts: base, reply: r, stage: 'data', reason: 'bad-line-endings' });
    throw new SmtpReplyError(r, 'bad-line-endings', state.id);
  }

  const auth = await message.auth;
  const authDone = deps.clock.now();
  const fingerprint = deps.message.fingerprint({ sender: tx.sender, recipients: tx.recipients.map((r) => r.address), messageId: auth.messageId, body: auth.messageId ? null : message.bytes });
  const facts: Facts = {
    ...base,
    message: { fromDomain: auth.fromDomain, messageId: auth.messageId, size: message.bytes.length, firstSeenSeconds: deps.firstSeen(fingerprint), fromFields: auth.fromFields, fromAddresses: auth.fromAddresses },
    dkim: auth.dkim,
    arc: auth.arc,
    ...(auth.dmarc ? { dmarc: auth.dmarc } : {}),
  };
  const decision = deps.decide(facts, 'data') ?? { enforced: { action: 'accept', rule: '', reason: 'default' } };
  const verdict = decision.enforced;
  const timing = { authMs: authDone - started };

  if (verdict.action === 'reject' || verdict.action === 'tempfail') {
    tx.completed = verdict.action === 'reject';
    await closeTransaction(state, 'release');
    record(deps, state, tx, { decision, facts, reply: verdict.reply, stage: 'data', timing });
    throw new SmtpReplyError(verdict.reply, verdict.reason, state.id);
  }

  const authDomain = authenticatedDomain(facts);
  const limited = await limitData(deps, state, authDomain);
  if (limited) {
    await closeTransaction(state, 'release');
    record(deps, state, tx, { decision, facts, reply: limited.reply, stage: 'data', reason: 'rate-limited', timing });
    throw limited;
  }

  const fields: HeaderField[] = [
    ...verdictHeaders(verdict),
    { name: 'Authentication-Results', value: auth.authResults },
    deps.message.received({
      helo: state.helo, ehlo: state.esmtp, ptr: state.ptr, ip: state.ip, hostname: deps.config.hostname, sessionId: state.id,
      tls: state.tlsInfo, smtputf8: tx.mailParams.SMTPUTF8 === true,
      recipients: tx.recipients.map((r) => r.address), date: new Date(deps.clock.now()),
    }),
  ];
  const outgoing = deps.message.rewrite(message.bytes, deps.config.hostname, fields);
  const backend = await quarantineRedirect(deps, state, tx, verdict);
  const relayStart = deps.clock.now();
  let answer: BackendReply;
  try {
    answer = await backend.data(outgoing);
  } catch (err) {
    await closeTransaction(state, 'abort');
    const r = REPLIES.backendUnavailable();
    record(deps, state, tx, { decision, facts, reply: r, stage: 'data', reason: 'backend-unavailable', error: err, timing });
    throw new SmtpReplyError(r, 'backend-unavailable', state.id, { cause: err });
  }
  const relayMs = deps.clock.now() - relayStart;
  tx.completed = answer.code < 400 || answer.code >= 500;
  // Answer the client first: the backend's RSET/pooling must not widen the window between
  // its 250 and ours (RFC 1047 duplicates). release() never rejects.
  void closeTransaction(state, 'release');
  state.messages++;
  if (answer.code >= 300) {
    const r = mirror(answer, 'data');
    record(deps, state, tx, { decision, facts, reply: r, backend: answer, stage: 'data', reason: answer.code < 500 ? 'backend-unavailable' : 'backend-rejected', timing: { ...timing, relayMs } });
    throw new SmtpReplyError(r, answer.code < 500 ? 'backend-unavailable' : 'backend-rejected', state.id);
  }
  record(deps, state, tx, { decision, facts, backend: answer, stage: 'data', timing: { ...timing, relayMs } });
  // Mirror the backend's acceptance (its queue id helps the sender trace the message).
  return `${answer.enhanced ?? '2.0.0'} ${answer.text || 'Ok'} (${state.id})`;
}

/** A quarantine rule with a mailbox sends the message there instead of to its recipients. */
async function quarantineRedirect(deps: PipelineDeps, state: SessionState, tx: Transaction, verdict: Verdict): Promise<BackendTx> {
  if (verdict.action !== 'quarantine' || !verdict.mailbox) return tx.backend!;
  await tx.backend!.release();
  tx.backend = null;
  const backend = await backendCall(deps, state, () => deps.openBackend({ ip: state.ip, ptr: state.ptr, helo: state.helo, esmtp: state.esmtp }), 'data');
  abandonIfGone(state, tx, backend);
  tx.backend = backend;
  const mail = await backendCall(deps, state, () => backend.mail(tx.sender, tx.mailParams), 'data');
  const rcpt = mail.code < 300 ? await backendCall(deps, state, () => backend.rcpt(verdict.mailbox!, {}), 'data') : mail;
  if (rcpt.code >= 300) {
    await closeTransaction(state, 'release');
    state.log.error({ mailbox: verdict.mailbox, backend: replyLine(rcpt) }, 'quarantine mailbox refused by backend');
    throw new SmtpReplyError(REPLIES.backendUnavailable(), 'backend-unavailable', state.id);
  }
  return backend;
}

interface ReadResult {
  readonly message: { bytes: Buffer; auth: Promise<import('./deps.ts').MessageAuth> };
  readonly repaired: number;
  readonly oversize: boolean;
  /** The header limit the message crossed, if any (its verification was abandoned). */
  readonly headerLimit: HeaderBreach | null;
}

/**
 * One pass over DATA: bytes are line-ending-normalised, kept for relaying, and streamed into
 * DKIM/ARC/DMARC verification at the same time (so DNS lookups overlap the upload).
 */
async function readMessage(deps: PipelineDeps, state: SessionState, tx: Transaction, stream: Readable & { sizeExceeded?: boolean }): Promise<ReadResult> {
  const normaliser = deps.message.normaliser();
  const toAuth = deps.message.headerGuard();
  const chunks: Buffer[] = [];
  let size = 0;
  let oversize = false;
  const auth = deps.authenticate({ message: toAuth, ip: state.ip, helo: state.helo, sender: tx.sender, spf: tx.spf, withheldSignatures: () => toAuth.withheldSignatures });
  auth.catch(() => undefined); // awaited below; avoid an unhandled rejection if we bail out first
  await new Promise<void>((resolve, reject) => {
    // RFC 5321 §4.5.3.2.6 bounds the wait per chunk (socketTimeout); this bounds the whole
    // message, so a client trickling bytes cannot hold a session and a backend connection.
    const timer = setTimeout(() => {
      state.log.warn({ limitMs: deps.config.limits.dataTimeoutMs, bytes: size }, 'client too slow sending the message, closing');
      deps.dropConnection(state.id, REPLIES.dataTimeout());
    }, deps.config.limits.dataTimeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      toAuth.destroy(); // lets the verifier finish instead of waiting for an end that never comes
      reject(err);
    };
    normaliser.on('data', (chunk: Buffer) => {
      if (oversize) return;
      size += chunk.length;
      if (size > deps.config.limits.maxMessageSize) {
        oversize = true;
        chunks.length = 0;
        toAuth.end();
        return;
      }
      chunks.push(chunk);
      toAuth.write(chunk);
    });
    normaliser.on('end', () => {
      clearTimeout(timer);
      if (!toAuth.writableEnded) toAuth.end();
      resolve();
    });
    normaliser.on('error', fail);
    stream.on('error', fail);
    stream.pipe(normaliser);
  });
  return {
    message: { bytes: Buffer.concat(chunks, oversize ? 0 : size), auth },
    repaired: normaliser.counts.bareCr + normaliser.counts.bareLf,
    oversize: oversize || Boolean(stream.sizeExceeded),
    headerLimit: toAuth.breach,
  };
}

function verdictHeaders(verdict: Verdict): HeaderField[] {
  return verdict.action === 'tag' || verdict.action === 'quarantine' ? [...verdict.headers] : [];
}

export function factsOf(state: SessionState, tx: Transaction): Facts {
  return {
    client: { ip: state.ip, ptr: state.ptr, helo: state.helo, tls: state.tls, tier: state.tier },
    envelope: { sender: tx.sender, senderDomain: tx.senderDomain, recipients: tx.recipients.map((r) => r.address) },
    spf: tx.spf.facts,
  };
}

/** Runs a backend call; connection-level failures become 451 4.4.1 (never a 250, never a 5xx). */
async function backendCall<T>(deps: PipelineDeps, state: SessionState, fn: () => Promise<T>, stage: 'rcpt' | 'data'): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SmtpReplyError) throw err;
    const kind = (err as { kind?: string }).kind ?? 'error';
    state.log.warn({ err: (err as Error).message, kind }, 'backend unavailable');
    // The transaction stays (its accepted recipients are the client's to retry) but has no
    // backend any more: what follows in it gets 4.4.1 too.
    const tx = state.tx;
    if (tx) {
      tx.backendLost = true;
      tx.backend?.abort();
      tx.backend = null;
    }
    throw reply(deps, state, stage, REPLIES.backendUnavailable(), 'backend-unavailable', err);
  }
}

function reply(deps: PipelineDeps, state: SessionState, stage: string, r: FailReply, reason: SmtpReplyError['reason'], cause?: unknown): SmtpReplyError {
  deps.metrics.replies.inc({ stage, class: replyClass(r.code) });
  return new SmtpReplyError(r, reason, state.id, cause === undefined ? undefined : { cause });
}

const PERM_CODES: readonly number[] = [550, 551, 552, 553, 554];
const TEMP_CODES: readonly number[] = [421, 450, 451, 452];

/** The backend's refusal as our reply: same class, its enhanced code and text when well-formed. */
export function mirror(answer: BackendReply, stage: 'rcpt' | 'data'): FailReply {
  const text = answer.text || (answer.code < 500 ? 'Temporary failure at the mail store' : 'Refused by the mail store');
  if (answer.code >= 500) {
    // RFC 5321 §4.3.2: 554 is no reply to MAIL/RCPT; other codes (501, 503, 555…) become 550 there.
    const code = (PERM_CODES.includes(answer.code) ? answer.code : stage === 'rcpt' ? 550 : 554) as PermCode;
    const enhanced = (answer.enhanced?.startsWith('5.') ? answer.enhanced : '5.0.0') as PermReply['enhanced'];
    return { code, enhanced, text };
  }
  // A backend 421 closes its connection, not ours: the client gets a plain 451.
  const code = (TEMP_CODES.includes(answer.code) && answer.code !== 421 ? answer.code : 451) as TempCode;
  const enhanced = (answer.enhanced?.startsWith('4.') ? answer.enhanced : '4.0.0') as TempReply['enhanced'];
  return { code, enhanced, text };
}

function replyLine(r: BackendReply): string {
  return `${r.code} ${r.enhanced ? r.enhanced + ' ' : ''}${r.text}`;
}

function record(deps: PipelineDeps, state: SessionState, tx: Transaction, outcome: Omit<Outcome, 'decision'> & { decision?: Decision }): void {
  logDecision(deps, state, tx, outcome);
}
