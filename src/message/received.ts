import { isIP } from 'node:net';
import type { HeaderField } from '../core/verdict.ts';

/**
 * The Received trace field we put on top of every relayed message (RFC 5321 §4.4):
 *   from <helo> (<ptr or unknown> [<ip>]) by <hostname> (Postern) with <protocol> (<tls>)
 *   id <session id> for <rcpt>; <date>
 * Everything the client chose (HELO, recipient) is sanitised so it cannot end the field,
 * open a comment or move the ";" that starts the date.
 */
export interface ReceivedInput {
  /** HELO/EHLO argument as given by the client (untrusted). */
  readonly helo: string;
  /** True for EHLO, false for HELO (RFC 3848: ESMTP vs SMTP). */
  readonly ehlo: boolean;
  /** Reverse DNS name of the client, null when none. */
  readonly ptr: string | null;
  readonly ip: string;
  /** Our host name. */
  readonly hostname: string;
  /** TLS in use on the client connection, null for plain text. */
  readonly tls: { readonly version?: string | null; readonly cipher?: string | null } | null;
  readonly authenticated?: boolean;
  /** RFC 6531 §3.7.3: SMTPUTF8 in use selects the UTF8SMTP protocol family. */
  readonly smtputf8?: boolean;
  readonly sessionId: string;
  readonly recipients: readonly string[];
  readonly date: Date;
}

const MAX_NAME = 255;

/** A HELO or DNS name reduced to characters that are safe in a Received clause. */
export function sanitiseName(value: string): string {
  const cleaned = value.trim().slice(0, MAX_NAME).replace(/[^A-Za-z0-9.\-_:[\]]/g, '_');
  return cleaned || 'unknown';
}

/** Text for inside a comment: no controls, and no "(", ")" or "\" to unbalance it. */
function commentText(value: string): string {
  // controls would end or corrupt the line
  return value.replace(/[\x00-\x1f\x7f()\\]/g, ' ').replace(/\s+/g, ' ').trim();
}

/** RFC 5321 §4.1.3 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
function addressLiteral(ip: string): string {
  const family = isIP(ip);
  if (family === 6) return `[IPv6:${ip}]`;
  if (family === 4) return `[${ip}]`;
  return `[${sanitiseName(ip)}]`;
}

/** RFC 3848 / RFC 6531 protocol keyword. */
export function protocolKeyword(input: Pick<ReceivedInput, 'ehlo' | 'tls' | 'authenticated' | 'smtputf8'>): string {
  if (input.smtputf8) return `UTF8SMTP${input.tls ? 'S' : ''}${input.authenticated ? 'A' : ''}`;
  if (!input.ehlo) return 'SMTP';
  return `ESMTP${input.tls ? 'S' : ''}${input.authenticated ? 'A' : ''}`;
}

/** A recipient for the "for" clause, or null when it is not safe to write as a Path. */
function forPath(recipients: readonly string[]): string | null {
  if (recipients.length !== 1) return null; // RFC 5321 §4.4: only when one, to not disclose others
  const rcpt = recipients[0] ?? '';
  // any of these would break the clause
  if (!rcpt || /[\x00-\x20\x7f<>();\\]/.test(rcpt)) return null;
  return `<${rcpt}>`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC ("+0000"), independent of the process time zone. */
export function formatRfc5322Date(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const day = DAYS[date.getUTCDay()] ?? 'Sun';
  const month = MONTHS[date.getUTCMonth()] ?? 'Jan';
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  return `${day}, ${date.getUTCDate()} ${month} ${date.getUTCFullYear()} ${time} +0000`;
}

export function buildReceived(input: ReceivedInput): HeaderField {
  const ptr = input.ptr ? sanitiseName(input.ptr) : 'unknown';
  const parts = [
    `from ${sanitiseName(input.helo)} (${ptr} ${addressLiteral(input.ip)})`,
    `by ${sanitiseName(input.hostname)} (Postern)`,
    `with ${protocolKeyword(input)}`,
  ];
  if (input.tls) {
    const tls = commentText([input.tls.version, input.tls.cipher].filter(Boolean).join(' '));
    if (tls) parts.push(`(${tls})`);
  }
  parts.push(`id ${input.sessionId.replace(/[^A-Za-z0-9._-]/g, '') || 'unknown'}`);
  const rcpt = forPath(input.recipients);
  if (rcpt) parts.push(`for ${rcpt}`);
  return { name: 'Received', value: `${parts.join(' ')}; ${formatRfc5322Date(input.date)}` };
}
