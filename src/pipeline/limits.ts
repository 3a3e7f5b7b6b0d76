/**
 * Rate limits and reputation at each SMTP step (issue 3), on the Reputation facade. A limited
 * step is refused with the reply of src/pipeline/replies.ts (421 at connect, 451 4.7.1 in a
 * session) and logged; it teaches the reputation nothing (endings.ts: learn from what the
 * sender did, not from what we did to it).
 *
 * Which tokens stay spent and which go back is decided when the transaction ends
 * (endings.ts); the steps here only take them.
 */
import { SmtpReplyError } from '../core/errors.ts';
import type { Reason } from '../core/verdict.ts';
import type { Limited, Reservation, TierInfo } from '../reputation/types.ts';
import type { PipelineDeps } from './deps.ts';
import { limitReply, type LimitStep } from './replies.ts';
import type { SessionState } from './state.ts';

type LimitDeps = Pick<PipelineDeps, 'reputation' | 'clock' | 'metrics'>;

/** The error a refused step throws; logged once here. */
export function limitError(state: SessionState, step: LimitStep, limited: Limited): SmtpReplyError {
  const reason: Reason = limited.storeUnavailable ? 'internal-error' : 'rate-limited';
  state.log.info({ step, limiter: limited.limitedBy, retryAfterMs: limited.retryAfterMs, storeUnavailable: limited.storeUnavailable ?? false }, 'rate limited');
  return new SmtpReplyError(limitReply(step, limited), reason, state.id);
}

/** At connect: the client's tier, and its connection buckets. */
export async function limitConnect(deps: LimitDeps, state: SessionState): Promise<void> {
  const r = await deps.reputation.connect(state.ip, deps.clock.now());
  state.tierInfo = r.tier;
  state.tier = r.tier.tier;
  deps.metrics.tierConnections.inc({ tier: r.tier.tier });
  if (!r.ok) {
    deps.metrics.connections.inc({ outcome: 'refused', reason: r.storeUnavailable ? 'store-unavailable' : 'rate-limited' });
    throw limitError(state, 'connect', r);
  }
}

/**
 * The tier of the client now in `state.ip`. XCLIENT from a trusted peer may have named
 * another client within the connection: its tier is read (never a connection take: the
 * connection was counted once, at connect).
 */
export async function currentTier(deps: LimitDeps, state: SessionState): Promise<TierInfo> {
  if (state.tierInfo && state.tierInfo.ip.subject.id === state.ip) return state.tierInfo;
  const tier = await deps.reputation.tier(state.ip, deps.clock.now());
  state.tierInfo = tier;
  state.tier = tier.tier;
  return tier;
}

export async function takeMail(deps: LimitDeps, state: SessionState): Promise<Reservation> {
  const r = await deps.reputation.mail(state.ip, await currentTier(deps, state), deps.clock.now());
  if (!r.ok) throw limitError(state, 'mail', r);
  return r.reservation;
}

export async function takeRcpt(deps: LimitDeps, state: SessionState, recipient: string): Promise<Reservation> {
  const r = await deps.reputation.rcpt(state.ip, recipient, await currentTier(deps, state), deps.clock.now());
  if (!r.ok) throw limitError(state, 'rcpt', r);
  return r.reservation;
}

/** The authenticated sender domain's bucket at the end of DATA: only a DMARC-pass From domain counts. */
export async function takeData(deps: LimitDeps, authDomain: string | null): Promise<{ ok: true; reservation: Reservation } | ({ ok: false } & Limited)> {
  return deps.reputation.data(authDomain, deps.clock.now());
}
