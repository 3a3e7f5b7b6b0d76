/**
 * Rate limits and reputation at each SMTP step (issue 3), on the Reputation facade. Limited
 * means slow down: 421 at connect, 451 4.7.1 at MAIL/RCPT/DATA, never a 5xx for a rate
 * (RFC 5321 §4.2.5: transient). A store that cannot answer under failMode 'closed' is our
 * problem, not the client's: 4.3.0, and nothing is learnt from it.
 *
 * Tokens taken at MAIL and RCPT are reserved for the transaction; a transaction that ends
 * before its DATA is complete (RSET, QUIT, disconnect) gives them back (closeTransaction).
 */
import { SmtpReplyError } from '../core/errors.ts';
import type { Facts } from '../core/facts.ts';
import type { TempReply } from '../core/reply.ts';
import type { Reason } from '../core/verdict.ts';
import type { Limited, Outcome, Reservation } from '../reputation/types.ts';
import type { PipelineDeps } from './deps.ts';
import type { SessionState, Transaction } from './state.ts';

type Step = 'connect' | 'mail' | 'rcpt' | 'data';

function limitedReply(step: Step, limited: Limited): TempReply {
  const seconds = Math.max(1, Math.ceil(limited.retryAfterMs / 1000));
  if (limited.storeUnavailable) {
    return { code: step === 'connect' ? 421 : 451, enhanced: '4.3.0', text: 'Temporary local problem (rate limit store unavailable), please try again later' };
  }
  const what = limited.limitedBy === 'blocklist' ? 'Mail from your address is not accepted at this time' : 'Rate limit exceeded';
  return step === 'connect'
    ? { code: 421, enhanced: '4.7.0', text: `${what}, please slow down and try again in ${seconds} s` }
    : { code: 451, enhanced: '4.7.1', text: `${what}, please slow down and try again in ${seconds} s` };
}

/** Counts, logs and learns a refusal, and returns the error the stage throws. */
function refuse(deps: PipelineDeps, state: SessionState, step: Step, limited: Limited): SmtpReplyError {
  const reply = limitedReply(step, limited);
  const reason: Reason = limited.storeUnavailable ? 'internal-error' : 'rate-limited';
  state.log.info({ step, limiter: limited.limitedBy, retryAfterMs: limited.retryAfterMs, storeUnavailable: limited.storeUnavailable ?? false }, 'rate limited');
  deps.metrics.replies.inc({ stage: step, class: '4xx' });
  // A sender domain over its own bucket says nothing about the IP (a shared ESP address).
  if (!limited.storeUnavailable && limited.limitedBy !== 'domain-messages') learn(deps, state.ip, null, 'rate-limited');
  return new SmtpReplyError(reply, reason, state.id);
}

export async function limitConnect(deps: PipelineDeps, state: SessionState): Promise<void> {
  const r = await deps.reputation.connect(state.ip, deps.clock.now());
  state.tierInfo = r.tier;
  state.tier = r.tier.tier;
  deps.metrics.tierConnections.inc({ tier: r.tier.tier });
  if (!r.ok) {
    deps.metrics.connections.inc({ outcome: 'refused', reason: r.storeUnavailable ? 'store-unavailable' : 'rate-limited' });
    throw refuse(deps, state, 'connect', r);
  }
}

/** XCLIENT may have changed the client within the connection: its tier is then looked up anew. */
async function tierFor(deps: PipelineDeps, state: SessionState): Promise<NonNullable<SessionState['tierInfo']>> {
  if (state.tierInfo && state.tierInfo.ip.subject.id === state.ip) return state.tierInfo;
  await limitConnect(deps, state);
  return state.tierInfo!;
}

export async function limitMail(deps: PipelineDeps, state: SessionState, tx: Transaction): Promise<void> {
  const r = await deps.reputation.mail(state.ip, await tierFor(deps, state), deps.clock.now());
  if (!r.ok) throw refuse(deps, state, 'mail', r);
  keep(state, tx, r.reservation);
}

export async function limitRcpt(deps: PipelineDeps, state: SessionState, tx: Transaction, recipient: string): Promise<void> {
  const r = await deps.reputation.rcpt(state.ip, recipient, await tierFor(deps, state), deps.clock.now());
  if (!r.ok) throw refuse(deps, state, 'rcpt', r);
  keep(state, tx, r.reservation);
}

/**
 * Books tokens on the transaction, unless it ended while the store answered (client gone,
 * RSET): then nobody would release them, so they go back now.
 */
function keep(state: SessionState, tx: Transaction, reservation: Reservation): void {
  if (state.closed || state.tx !== tx) {
    state.release([reservation]);
    throw new SmtpReplyError({ code: 451, enhanced: '4.3.0', text: 'Transaction ended' }, 'internal-error', state.id);
  }
  tx.reservations.push(reservation);
}

/** The authenticated sender domain's bucket: only a DMARC-pass (aligned) From domain counts. */
export async function limitData(deps: PipelineDeps, state: SessionState, authDomain: string | null): Promise<SmtpReplyError | null> {
  const r = await deps.reputation.data(authDomain, deps.clock.now());
  return r.ok ? null : refuse(deps, state, 'data', r);
}

/**
 * The domain that may earn or spend reputation: the RFC5322.From domain when DMARC passed,
 * i.e. an aligned DKIM d= or SPF-pass domain vouches for it. Never an unauthenticated From.
 */
export function authenticatedDomain(facts: Facts): string | null {
  return facts.dmarc?.result === 'pass' && facts.message?.fromDomain ? facts.message.fromDomain : null;
}

export function learn(deps: PipelineDeps, ip: string, authDomain: string | null, outcome: Outcome, count?: number): void {
  deps.reputation.learn({ ip, authDomain, outcome, ...(count !== undefined ? { count } : {}) }, deps.clock.now())
    .catch((err: unknown) => deps.logger.warn({ err: (err as Error).message }, 'reputation learn failed'));
}

/** What a finished transaction teaches; null when it teaches nothing (tempfails, backend trouble). */
export function outcomeOf(code: number | null, reason: Reason, facts: Facts): Outcome | null {
  if (code === null) return authenticatedDomain(facts) ? 'delivered-aligned' : 'delivered';
  if (code < 500) return null;
  switch (reason) {
    case 'dmarc-policy': case 'spf-fail': case 'dkim-required': return 'auth-failed';
    case 'rule': return 'policy-rejected';
    case 'oversize': case 'bad-line-endings': case 'bad-address': case 'routing-syntax': case 'relay-denied': return 'protocol-error';
    default: return null;
  }
}
