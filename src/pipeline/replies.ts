/**
 * The one place that turns what happened into the reply the client gets: a rate limit, a
 * backend's answer, a policy verdict (its reply was built by src/policy/verdicts.ts from the
 * catalogue or the rule), a shutdown. Texts come from the catalogue in src/core/reply.ts.
 */
import { REPLIES, type FailReply, type PermCode, type PermReply, type TempCode, type TempReply } from '../core/reply.ts';
import type { Limited } from '../reputation/types.ts';
import type { BackendReply } from './state.ts';

export type LimitStep = 'connect' | 'mail' | 'rcpt' | 'data';

/**
 * Limited means slow down: 421 at connect, 451 4.7.1 in a session, never a 5xx for a rate
 * (RFC 5321 §4.2.5: transient). A store that cannot answer under failMode 'closed' is our
 * problem, not the client's: 4.3.0.
 */
export function limitReply(step: LimitStep, limited: Limited): TempReply {
  const atConnect = step === 'connect';
  if (limited.storeUnavailable) return REPLIES.storeUnavailable(atConnect);
  const seconds = Math.max(1, Math.ceil(limited.retryAfterMs / 1000));
  if (limited.limitedBy === 'blocklist') return REPLIES.blocked(atConnect, seconds);
  return atConnect ? REPLIES.connectRateLimited(seconds) : REPLIES.rateLimited(seconds);
}

const PERM_CODES: readonly number[] = [550, 551, 552, 553, 554];
const TEMP_CODES: readonly number[] = [421, 450, 451, 452];

/** The backend's refusal as our reply: same class, its enhanced code and text when well-formed. */
export function backendReply(answer: BackendReply, stage: 'rcpt' | 'data'): FailReply {
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

/** Our 250 at the end of DATA mirrors the backend's acceptance: its queue id helps the sender trace the message. */
export function deliveredText(answer: BackendReply, sessionId: string): string {
  return `${answer.enhanced ?? '2.0.0'} ${answer.text || 'Ok'} (${sessionId})`;
}

/** A backend reply as one log field. */
export function replyLine(r: BackendReply | FailReply): string {
  return `${r.code} ${r.enhanced ? r.enhanced + ' ' : ''}${r.text}`.replace(/\s+/g, ' ').trim();
}

/** Draining: new connections and idle sessions are told to come back. */
export const shutdownReply = (): TempReply => REPLIES.shuttingDown();
