/**
 * SMTP replies with RFC 3463 enhanced status codes. The basic code and the enhanced code's
 * class cannot disagree: a 5xx always carries 5.x.x, a 4xx always 4.x.x (a compile error
 * otherwise). The catalogue below holds the text of every reply Postern originates; policy
 * rules may override a refusal's text (src/policy/verdicts.ts), and a backend's refusal is
 * mirrored (src/pipeline/replies.ts). smtp-server still answers protocol errors itself
 * (syntax, sequence, 552 once SIZE is exceeded).
 */

export type TempCode = 421 | 450 | 451 | 452;
export type PermCode = 550 | 551 | 552 | 553 | 554;
type Enh<C extends 4 | 5> = `${C}.${number}.${number}`;

export interface TempReply { readonly code: TempCode; readonly enhanced: Enh<4>; readonly text: string }
export interface PermReply { readonly code: PermCode; readonly enhanced: Enh<5>; readonly text: string }
export type FailReply = TempReply | PermReply;

export function isTemp(reply: FailReply): reply is TempReply {
  return reply.code < 500;
}

/** Reply text must be one line of printable ASCII: it goes on the wire verbatim. */
export function sanitizeText(text: string): string {
  return text.replace(/[^\x20-\x7e]+/g, ' ').trim();
}

/** The line as smtp-server sends it after the code: "5.7.1 text (session id)". */
export function formatReply(reply: FailReply, sessionId?: string): string {
  const suffix = sessionId ? ` (${sessionId})` : '';
  return `${reply.enhanced} ${sanitizeText(reply.text)}${suffix}`;
}

/** The whole reply line, for a reply written on a socket ourselves (not through smtp-server): "421 4.3.2 text", no CRLF. */
export function wireLine(reply: FailReply, sessionId?: string): string {
  return `${reply.code} ${formatReply(reply, sessionId)}`;
}

/** The catalogue of replies Postern originates (DESIGN.md "SMTP replies"). */
export const REPLIES = {
  relayDenied: (): PermReply => ({ code: 550, enhanced: '5.7.1', text: 'Relaying denied: recipient domain is not served here' }),
  routingSyntax: (): PermReply => ({ code: 550, enhanced: '5.7.1', text: 'Relaying denied: source routes and %, ! or @ in the local part are not accepted' }),
  badRecipient: (): PermReply => ({ code: 553, enhanced: '5.1.3', text: 'Recipient address syntax is invalid' }),
  /** RFC 6531 §3.5: an address that is not ASCII needs SMTPUTF8; one that is not valid UTF-8 is never right. */
  nonAsciiAddress: (): PermReply => ({ code: 553, enhanced: '5.6.7', text: 'Non-ASCII address not permitted: it needs SMTPUTF8 and valid UTF-8 (RFC 6531 section 3.5)' }),
  badSender: (): PermReply => ({ code: 553, enhanced: '5.1.7', text: 'Sender address syntax is invalid' }),
  tooManyRecipients: (max: number): TempReply => ({ code: 452, enhanced: '4.5.3', text: `Too many recipients, at most ${max} per message` }),
  tooManyRefused: (): TempReply => ({ code: 452, enhanced: '4.5.3', text: 'Too many recipients refused in this transaction, please send the others in a new one' }),
  oversize: (max: number): PermReply => ({ code: 552, enhanced: '5.3.4', text: `Message size exceeds the limit of ${max} bytes` }),
  /** RFC 3463 X.3.4 "message too big for system": the header section crossed one of its limits. */
  headerLimit: (breach: { limit: 'header-bytes' | 'header-fields' | 'header-field-lines' | 'header-lines'; max: number }): PermReply => {
    switch (breach.limit) {
      case 'header-bytes': return { code: 552, enhanced: '5.3.4', text: `Message header exceeds the limit of ${breach.max} bytes` };
      case 'header-fields': return { code: 552, enhanced: '5.3.4', text: `Message header has more than ${breach.max} fields` };
      case 'header-field-lines': return { code: 552, enhanced: '5.3.4', text: `Message header has a field folded over more than ${breach.max} lines` };
      case 'header-lines': return { code: 552, enhanced: '5.3.4', text: `Message header has more than ${breach.max} lines` };
    }
  },
  dataTimeout: (): TempReply => ({ code: 421, enhanced: '4.4.2', text: 'Timeout: the message took too long to arrive, closing connection' }),
  /** RFC 5322 §2.2: a header section starts with a field name; a first line starting with whitespace would continue ours. */
  headerStartsWithWhitespace: (): PermReply => ({ code: 550, enhanced: '5.6.0', text: 'Message header must start with a field name, not with whitespace (RFC 5322 section 2.2)' }),
  bareLineEnding: (): PermReply => ({ code: 550, enhanced: '5.6.0', text: 'Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)' }),
  /**
   * `domain` is the DMARC Policy Domain (where the applied record was found: the author domain,
   * its organizational domain, or a public-suffix domain of the tree walk) and `published` the
   * tag that applied there with its value: "p=reject", "sp=reject" for a subdomain, "np=reject"
   * for a non-existent one (RFC 9989 §4.10.1).
   */
  dmarcReject: (domain: string, published: string): PermReply => ({ code: 550, enhanced: '5.7.1', text: `Rejected by DMARC policy: ${domain} publishes ${published} and the message is not authenticated` }),
  spfFail: (domain: string): PermReply => ({ code: 550, enhanced: '5.7.23', text: `SPF check failed: ${domain} does not authorize your address to send its mail` }),
  spfTemperror: (): TempReply => ({ code: 451, enhanced: '4.7.24', text: 'SPF check had a temporary DNS error, please try again later' }),
  authTemperror: (): TempReply => ({ code: 451, enhanced: '4.7.5', text: 'Authentication checks had a temporary DNS error, please try again later' }),
  // RFC 7372 §3.1: which of the three a DKIM-requiring rule answers depends on what was found
  dkimRequired: (): PermReply => ({ code: 550, enhanced: '5.7.20', text: 'No passing DKIM signature found' }),
  dkimNotAcceptable: (): PermReply => ({ code: 550, enhanced: '5.7.21', text: 'No acceptable DKIM signature found' }),
  dkimNoAuthor: (): PermReply => ({ code: 550, enhanced: '5.7.22', text: 'No valid author-matched DKIM signature found' }),
  /** RFC 5322 §3.6: one From field; several authors only with a Sender. Which From a reader shows differs (a DMARC bypass). */
  multipleFrom: (): PermReply => ({ code: 550, enhanced: '5.7.1', text: 'Rejected: the message has more than one From field or author (RFC 5322 section 3.6)' }),
  /** RFC 5322 §3.6: exactly one From field; without one no author can be authenticated (RFC 7489 §6.6.1). */
  fromCount: (): PermReply => ({ code: 550, enhanced: '5.7.1', text: 'Rejected: the message must have exactly one From field (RFC 5322 section 3.6)' }),
  policyReject: (): PermReply => ({ code: 550, enhanced: '5.7.1', text: 'Message rejected by policy' }),
  policyTempfail: (): TempReply => ({ code: 451, enhanced: '4.7.1', text: 'Message deferred by policy, please try again later' }),
  /** RFC 5321 §4.2.5: a rate is transient; 421 at connect (and we close), 451 4.7.1 inside a session. */
  rateLimited: (retrySeconds: number): TempReply => ({ code: 451, enhanced: '4.7.1', text: `Rate limit exceeded, please slow down and try again in ${retrySeconds} s` }),
  connectRateLimited: (retrySeconds: number): TempReply => ({ code: 421, enhanced: '4.7.0', text: `Rate limit exceeded, please slow down and try again in ${retrySeconds} s` }),
  blocked: (atConnect: boolean, retrySeconds: number): TempReply => ({ code: atConnect ? 421 : 451, enhanced: atConnect ? '4.7.0' : '4.7.1', text: `Mail from your address is not accepted at this time, please slow down and try again in ${retrySeconds} s` }),
  /** The shared rate-limit store is down with failMode closed: our problem, not the client's. */
  storeUnavailable: (atConnect: boolean): TempReply => ({ code: atConnect ? 421 : 451, enhanced: '4.3.0', text: 'Temporary local problem (rate limit store unavailable), please try again later' }),
  tooManyConnections: (): TempReply => ({ code: 421, enhanced: '4.7.0', text: 'Too many connections, please slow down and try again later' }),
  shuttingDown: (): TempReply => ({ code: 421, enhanced: '4.3.2', text: 'Service shutting down, please try again later' }),
  /** RFC 3463 4.3.1 "mail system full": the in-flight byte budget is used up (no spool to fall back on). */
  insufficientStorage: (): TempReply => ({ code: 452, enhanced: '4.3.1', text: 'Insufficient system storage, please try again later' }),
  backendUnavailable: (): TempReply => ({ code: 451, enhanced: '4.4.1', text: 'Mail store temporarily unavailable, please try again later' }),
  internalError: (): TempReply => ({ code: 451, enhanced: '4.3.0', text: 'Temporary local problem, please try again later' }),
  /** RFC 5321 §3.5.3: 252 when we will not say whether a mailbox exists. */
  vrfyDisabled: (): { code: 252; enhanced: '2.0.0'; text: string } => ({ code: 252, enhanced: '2.0.0', text: 'Cannot VRFY user, but will accept message and attempt delivery' }),
} as const;
