/**
 * What of the failed message a failure report may show: its header section only (never the
 * body), with every address's local part replaced (RFC 9991 §7 privacy considerations, the
 * RFC 6590 redaction), so that the domain owner learns nothing about our users or the people
 * named in the message beyond domains and what their own systems wrote.
 *
 * - Address fields (From, To, Cc, Reply-To, Sender, Return-Path …) become the list of their
 *   addresses, display names and comments dropped: `<redacted-1f3a9c2e@example.net>`.
 * - Every other field keeps its text, with any local@domain in it redacted the same way (the
 *   "for <user@…>" of Received, smtp.mailfrom= of Authentication-Results, a Subject quoting an
 *   address) and http(s):// defanged to hxxp(s):// (RFC 9991 §7.3). Message-ID stays as it is:
 *   it is how the domain owner finds the message in their own logs.
 * - Non-ASCII bytes become "?" (the report is 7-bit), lines that are not part of a field are
 *   dropped, and fields listed in reports.dmarc.failure.omitHeaders are left out.
 *
 * The replacement is a keyed hash of the local part with a key drawn for each report: the
 * same address reads the same everywhere in one report (From and Sender, To and the envelope
 * recipient), and nothing links two reports, so no pseudonym can be followed over time.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { formatField, MAX_LINE_LENGTH } from '../../message/fold.ts';

/** Bytes of the original header section a report may copy; the rest is cut at a field boundary. */
export const MAX_HEADER_BYTES = 65_536;

const ADDRESS_FIELDS = new Set([
  'from', 'to', 'cc', 'bcc', 'reply-to', 'sender', 'return-path', 'delivered-to', 'x-original-to', 'envelope-to',
  'resent-from', 'resent-to', 'resent-cc', 'resent-bcc', 'resent-sender', 'disposition-notification-to', 'errors-to',
]);
const KEPT_AS_IS = new Set(['message-id']);

// local part: a quoted string or dot-atom text; "=" is left out so that "smtp.mailfrom=user@d"
// and DKIM's "i=@d" keep their tag (an SRS local part loses only what follows its last "=")
const LOCAL = String.raw`"(?:[^"\\\r\n]|\\.)*"|[A-Za-z0-9!#$%&'*+/?^_` + '`' + String.raw`{|}~.\x80-\xff-]+`;
const DOMAIN = String.raw`\[[^\]\r\n]*\]|[A-Za-z0-9\x80-\xff](?:[A-Za-z0-9.\x80-\xff-]*[A-Za-z0-9\x80-\xff])?`;
const ADDRESS = new RegExp(`(${LOCAL})@(${DOMAIN})`, 'g');

/** Replaces a local part; the same local part gives the same token within one Redactor. */
export type Redactor = (local: string) => string;

/** A redactor with a key of its own (one per report). */
export function createRedactor(key: Buffer = randomBytes(16)): Redactor {
  const memo = new Map<string, string>();
  return (local) => {
    const id = local.toLowerCase();
    let token = memo.get(id);
    if (token === undefined) {
      token = `redacted-${createHmac('sha256', key).update(id).digest('hex').slice(0, 8)}`;
      memo.set(id, token);
    }
    return token;
  };
}

/** local@domain → token@domain; '' (the null sender) stays ''. */
export function redactAddress(address: string, redact: Redactor): string {
  const at = address.lastIndexOf('@');
  return at <= 0 ? (address === '' ? '' : redact(address)) : `${redact(address.slice(0, at))}@${address.slice(at + 1).toLowerCase()}`;
}

/**
 * The header section of a message held as the chunks it arrived in, without its blank line;
 * at most maxBytes (cut after the last complete line), copied so that the message itself can
 * go. null when the message has no header section.
 */
export function headerSection(chunks: readonly Buffer[], maxBytes: number = MAX_HEADER_BYTES): Buffer | null {
  const head: Buffer[] = [];
  let size = 0;
  for (const chunk of chunks) {
    if (size > maxBytes + 4) break;
    head.push(chunk);
    size += chunk.length;
  }
  const bytes = Buffer.concat(head, Math.min(size, maxBytes + 4)); // a copy: the chunks are the message's
  if (bytes.length === 0 || bytes.indexOf('\r\n') === 0) return null;
  const end = bytes.indexOf('\r\n\r\n');
  if (end >= 0 && end + 2 <= maxBytes) return bytes.subarray(0, end + 2);
  const lastLine = bytes.subarray(0, maxBytes).lastIndexOf('\r\n');
  return lastLine > 0 ? bytes.subarray(0, lastLine + 2) : null;
}

export interface RedactedHeader {
  /** The fields kept, redacted, each ending with CRLF (the third part of the report). */
  readonly text: string;
  /** The redacted Subject, unfolded; null when absent or omitted. */
  readonly subject: string | null;
}

interface Field { readonly name: string; readonly lines: string[] }

/** Fields as RFC 5322 §2.2 reads them: a name and ":", then continuation lines starting with WSP; other lines dropped. */
function fieldsOf(header: Buffer): Field[] {
  const fields: Field[] = [];
  let current: Field | null = null;
  for (const line of header.toString('latin1').split('\r\n')) {
    if (/^[ \t]/.test(line)) {
      current?.lines.push(line);
      continue;
    }
    const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(line);
    current = m ? { name: m[1]!, lines: [line] } : null;
    if (current) fields.push(current);
  }
  return fields;
}

/** 7-bit, no control characters but HTAB, no line over the RFC 5322 limit. */
const clean = (line: string): string => line.replace(/[\x80-\xff]/g, '?').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' ').slice(0, MAX_LINE_LENGTH);

/** Any local@domain in free text redacted, links defanged. */
export function redactText(text: string, redact: Redactor): string {
  return text.replace(ADDRESS, (_, local: string, domain: string) => `${redact(local)}@${domain.toLowerCase()}`).replace(/\bhttp(s?):\/\//gi, 'hxxp$1://');
}

function redactField(field: Field, redact: Redactor): string {
  const key = field.name.toLowerCase();
  if (KEPT_AS_IS.has(key)) return field.lines.map(clean).join('\r\n') + '\r\n';
  if (!ADDRESS_FIELDS.has(key)) return field.lines.map((l) => clean(redactText(l, redact))).join('\r\n') + '\r\n';
  const value = field.lines.join(' ').slice(field.lines[0]!.indexOf(':') + 1);
  const addresses = [...value.matchAll(ADDRESS)].map(([, local, domain]) => `<${redact(local!)}@${domain!.toLowerCase()}>`);
  const kept = addresses.length > 0 ? addresses.join(', ') : key === 'return-path' && /<\s*>/.test(value) ? '<>' : 'undisclosed-recipients:;';
  return formatField(field.name, clean(kept));
}

/** The message is itself a report (multipart/report: a DSN, an ARF report): reporting on it could start a loop between two reporters. */
export function isReportMessage(header: Buffer): boolean {
  if (!/multipart\/report/i.test(header.toString('latin1'))) return false; // the common case, without parsing
  return fieldsOf(header).some((f) => f.name.toLowerCase() === 'content-type' && /:\s*multipart\/report\b/i.test(f.lines.join(' ')));
}

export function redactHeader(header: Buffer, opts: { readonly omit: ReadonlySet<string>; readonly redact: Redactor }): RedactedHeader {
  let text = '';
  let subject: string | null = null;
  for (const field of fieldsOf(header)) {
    const key = field.name.toLowerCase();
    if (opts.omit.has(key)) continue;
    const redacted = redactField(field, opts.redact);
    if (key === 'subject' && subject === null) subject = redacted.replace(/\r\n[ \t]+/g, ' ').replace(/\r\n$/, '').slice(field.name.length + 1).trim();
    text += redacted;
  }
  return { text, subject };
}
