/**
 * A failure report as a mail (RFC 9991 §4, the format of RFC 6591 on RFC 5965 ARF): a
 * multipart/report; report-type=feedback-report (RFC 6522) of three parts:
 *
 *   1. text/plain: what this is, for a human;
 *   2. message/feedback-report: Feedback-Type auth-failure, Auth-Failure, Identity-Alignment,
 *      Authentication-Results, the redacted envelope, Source-IP, Reported-Domain,
 *      Delivery-Result, and the DKIM fields or SPF-DNS for a failure of an aligned identifier;
 *   3. text/rfc822-headers: the header section as redact.ts leaves it (never the body).
 *
 * Addresses of the envelope go through the same redactor as the header, so one person reads
 * the same in both.
 */
import { randomBytes } from 'node:crypto';
import type { AuthResult, Facts } from '../../core/facts.ts';
import type { Action } from '../../core/verdict.ts';
import { formatAuthservId } from '../../auth/auth-results.ts';
import { formatField } from '../../message/fold.ts';
import { formatRfc5322Date } from '../../message/received.ts';
import { redactAddress, redactText, type RedactedHeader, type Redactor } from './redact.ts';
import type { FailureTrigger } from './trigger.ts';

export interface FailureReportInput {
  readonly trigger: FailureTrigger;
  readonly facts: Facts;
  /** What Postern did with the message (a backend refusal counts as reject). */
  readonly action: Action;
  /** When the transaction started (ms): Arrival-Date. */
  readonly arrival: number;
  /** RFC 3461 ENVID the client gave, if any. */
  readonly envelopeId?: string | undefined;
  readonly header: RedactedHeader;
  readonly redact: Redactor;
  /** The SPF record that failed, when SPF failed (SPF-DNS). */
  readonly spfRecord: string | null;
}

export interface ReportEnvelope {
  /** Our reporting address (From: and MAIL FROM). */
  readonly from: string;
  readonly to: string;
  /** Our host name: Reporting-MTA and the authserv-id. */
  readonly hostname: string;
  /** "Postern/<version>" (RFC 5965 User-Agent). */
  readonly userAgent: string;
  /** Date: header time (ms). */
  readonly now: number;
}

/** RFC 6591 §3.2 Delivery-Result. A quarantined message went to a junk folder or a quarantine mailbox: "spam". */
function deliveryResult(action: Action): string {
  return action === 'reject' ? 'reject' : action === 'quarantine' ? 'spam' : action === 'tempfail' ? 'other' : 'delivered';
}

/** RFC 9991 §4 item 2: the mechanisms that failed to authenticate an aligned identity, or "none". */
function identityAlignment(facts: Facts): string {
  const failed = [...(facts.dmarc?.dkimAligned ? [] : ['dkim']), ...(facts.dmarc?.spfAligned ? [] : ['spf'])];
  return failed.length > 0 ? failed.join(', ') : 'none';
}

const token = (s: string): string => s.replace(/[^\x21-\x7e]/g, '') || 'none';

/** Our Authentication-Results for the message (RFC 8601), from the facts; the envelope sender by its domain only. */
function authResults(hostname: string, facts: Facts): string {
  const dmarc = facts.dmarc!;
  const result = (r: AuthResult): string => token(r);
  const parts = [
    `dmarc=${result(dmarc.result)}${dmarc.policy ? ` (p=${dmarc.policy})` : ''} header.from=${token(dmarc.domain)}`,
    facts.spf.domain ? `spf=${result(facts.spf.result)} smtp.${facts.spf.identity === 'helo' ? 'helo' : 'mailfrom'}=${token(facts.spf.domain)}` : `spf=${result(facts.spf.result)}`,
    ...(facts.dkim ?? []).filter((d) => d.domain).map((d) => `dkim=${result(d.result)} header.d=${token(d.domain)} header.s=${token(d.selector)}`),
  ];
  if (!(facts.dkim ?? []).some((d) => d.domain)) parts.push('dkim=none');
  return `${formatAuthservId(hostname)}; ${parts.join('; ')}`;
}

/** The message/feedback-report fields (RFC 5965 §3, RFC 6591 §3, RFC 9991 §4), each folded and ending with CRLF. */
export function feedbackFields(r: FailureReportInput, env: Pick<ReportEnvelope, 'hostname' | 'userAgent'>): string {
  const { facts, trigger } = r;
  const field = (name: string, value: string): string => formatField(name, value);
  const fields = [
    field('Feedback-Type', 'auth-failure'),
    field('User-Agent', env.userAgent),
    field('Version', '1'),
    field('Auth-Failure', trigger.authFailure),
    field('Authentication-Results', authResults(env.hostname, facts)),
    field('Identity-Alignment', identityAlignment(facts)),
    field('Delivery-Result', deliveryResult(r.action)),
    ...(r.envelopeId && /^[\x21-\x7e]{1,100}$/.test(r.envelopeId) ? [field('Original-Envelope-Id', redactText(r.envelopeId, r.redact))] : []),
    field('Original-Mail-From', `<${redactAddress(facts.envelope.sender, r.redact)}>`),
    ...facts.envelope.recipients.map((to) => field('Original-Rcpt-To', `<${redactAddress(to, r.redact)}>`)),
    field('Arrival-Date', formatRfc5322Date(new Date(r.arrival))),
    field('Reporting-MTA', `dns; ${token(env.hostname)}`),
    field('Source-IP', facts.client.ip),
    field('Reported-Domain', facts.dmarc?.domain ?? trigger.policyDomain),
  ];
  const sig = trigger.signature;
  if (sig) {
    // the default AUID (RFC 6376 §3.5 i=): an i= with a local part would be one more address to redact
    fields.push(field('DKIM-Domain', token(sig.domain)), field('DKIM-Identity', `@${token(sig.domain)}`), field('DKIM-Selector', token(sig.selector)));
  }
  if (r.spfRecord !== null && facts.spf.domain) {
    // RFC 6591 §3.2: spf-dns = "SPF-DNS:" ( "txt" / "spf" ) ":" d-name ":" dns-record
    fields.push(field('SPF-DNS', `txt : ${token(facts.spf.domain)} : ${r.spfRecord.replace(/[^\x20-\x7e]/g, '?')}`));
  }
  return fields.join('');
}

/** The report's Subject: the original one as "FW: …" (RFC 9991 Appendix A) when it is reported, else a neutral one. */
function subjectOf(r: FailureReportInput): string {
  return r.header.subject !== null ? `FW: ${r.header.subject}` : `DMARC failure report for ${r.facts.dmarc?.domain ?? r.trigger.policyDomain}`;
}

/** The whole report with CRLF line endings, unsigned. */
export function composeFailureReport(r: FailureReportInput, env: ReportEnvelope): string {
  const submitter = env.from.slice(env.from.lastIndexOf('@') + 1);
  const boundary = `=_postern_ruf_${randomBytes(12).toString('hex')}`;
  const arrival = formatRfc5322Date(new Date(r.arrival));
  const lines = [
    formatField('From', env.from).trimEnd(),
    formatField('To', env.to).trimEnd(),
    formatField('Subject', subjectOf(r)).trimEnd(),
    `Date: ${formatRfc5322Date(new Date(env.now))}`,
    `Message-ID: <${randomBytes(12).toString('hex')}.dmarc-failure@${submitter}>`,
    'MIME-Version: 1.0',
    // RFC 3834: nobody answers it automatically (and we never report on a report: no loop)
    'Auto-Submitted: auto-generated',
    `Content-Type: multipart/report; report-type=feedback-report;\r\n boundary="${boundary}"`,
    '',
    'This is a MIME-formatted message.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    'This is an authentication failure report (RFC 9991)',
    `for a message with From domain ${r.facts.dmarc?.domain ?? r.trigger.policyDomain}`,
    `received from IP ${r.facts.client.ip} on ${arrival}.`,
    'Only its header section is included, with the local part of every address',
    'replaced; the body is not included.',
    '',
    `--${boundary}`,
    'Content-Type: message/feedback-report',
    'Content-Transfer-Encoding: 7bit',
    '',
    feedbackFields(r, env),
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    'Content-Transfer-Encoding: 7bit',
    '',
    r.header.text,
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}
