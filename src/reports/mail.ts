/**
 * The report as a mail message (RFC 9990 §4): MIME multipart with a short text part and the
 * gzip'd XML as application/gzip, the Subject "Report Domain: … Submitter: … Report-ID: <…>",
 * Auto-Submitted (RFC 3834) so nobody auto-replies to it, DKIM-signed when a key is configured.
 */
import { createHash } from 'node:crypto';
import { dkimSign } from 'mailauth';
import type { ReportPart } from './report.ts';

export interface Signer {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: string;
}

export interface ReportMail {
  readonly from: string;
  readonly to: string;
  readonly domain: string;
  readonly submitter: string;
  readonly orgName: string;
  readonly part: ReportPart;
  /** Date: header time (ms). */
  readonly now: number;
}

/** base64 in lines of 76 characters (RFC 2045 §6.8). */
function base64Lines(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

/** The message with CRLF line endings, unsigned. */
export function composeReport(m: ReportMail): string {
  const { part } = m;
  // Same report, same destination → same Message-ID: a copy the relay got twice (RFC 1047) is recognisable.
  const messageId = `<${createHash('sha256').update(`${part.reportId}\n${m.to}`).digest('hex').slice(0, 24)}.dmarc@${m.submitter}>`;
  const boundary = `=_postern_${createHash('sha256').update(part.reportId).digest('hex').slice(0, 20)}`;
  const begin = new Date(part.begin * 1000).toISOString();
  const end = new Date(part.end * 1000).toISOString();
  const lines = [
    `From: ${m.from}`,
    `To: ${m.to}`,
    // RFC 9990 §4 dmarc-subject, folded at its FWS so that no line exceeds 78 characters
    `Subject: Report Domain: ${m.domain}\r\n Submitter: ${m.submitter}\r\n Report-ID: <${part.reportId}>`,
    `Date: ${new Date(m.now).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${messageId}`,
    'MIME-Version: 1.0',
    'Auto-Submitted: auto-generated',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    `This is a DMARC aggregate report (RFC 9990) from ${m.orgName.replace(/[^\x20-\x7e]/g, '?')} for ${m.domain},`,
    `covering ${begin} to ${end}: ${part.messages} message(s) in ${part.records} record(s).`,
    '',
    `--${boundary}`,
    `Content-Type: application/gzip; name="${part.filename}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${part.filename}"`,
    '',
    base64Lines(part.gzip),
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}

/** Prepends a DKIM-Signature; throws when the key cannot sign (a configuration error). */
export async function signReport(message: string, signer: Signer): Promise<string> {
  const signature = { signingDomain: signer.domain, selector: signer.selector, privateKey: signer.privateKey, canonicalization: 'relaxed/relaxed' };
  const result = await dkimSign(message, { ...signature, signatureData: [signature] });
  const failure = result.errors[0];
  if (!result.signatures) throw new Error(`DKIM signing failed: ${failure?.err.message ?? 'no signature'}`);
  return result.signatures + message;
}
