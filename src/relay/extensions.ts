/**
 * What the backend advertised in its EHLO reply, and the MAIL/RCPT parameters and XCLIENT
 * attributes we may therefore send it. The client's raw parameters come in (keys any case,
 * values already xtext-decoded by smtp-server); only what the backend understands goes out,
 * re-encoded, so a client can never inject a parameter the backend did not offer.
 */
import { isIPv6 } from 'node:net';
import type { SmtpResponse } from './reply.ts';

export interface Capabilities {
  /** EHLO was accepted (false after a HELO fallback: no extensions at all). */
  readonly esmtp: boolean;
  /** RFC 1870 SIZE: the declared limit (0 = none declared), or null when SIZE is not offered. */
  readonly size: number | null;
  readonly eightBitMime: boolean;
  readonly smtpUtf8: boolean;
  readonly dsn: boolean;
  readonly pipelining: boolean;
  readonly enhancedStatusCodes: boolean;
  readonly starttls: boolean;
  /** XCLIENT attribute names offered (upper case), or null when XCLIENT is not offered. */
  readonly xclient: ReadonlySet<string> | null;
}

export type SmtpParams = Readonly<Record<string, string | true>>;

export const HELO_CAPABILITIES: Capabilities = Object.freeze({
  esmtp: false, size: null, eightBitMime: false, smtpUtf8: false, dsn: false,
  pipelining: false, enhancedStatusCodes: false, starttls: false, xclient: null,
});

/** RFC 5321 §4.1.1.1: the first line names the server; each further line is "KEYWORD params". */
export function parseCapabilities(ehlo: SmtpResponse): Capabilities {
  const keywords = new Map<string, string[]>();
  for (const line of ehlo.lines.slice(1)) {
    const [keyword, ...args] = line.trim().split(/\s+/);
    if (keyword) keywords.set(keyword.toUpperCase(), args);
  }
  const sizeArgs = keywords.get('SIZE');
  const xclientArgs = keywords.get('XCLIENT');
  return Object.freeze({
    esmtp: true,
    size: sizeArgs === undefined ? null : sizeLimit(sizeArgs[0]),
    eightBitMime: keywords.has('8BITMIME'),
    smtpUtf8: keywords.has('SMTPUTF8'),
    dsn: keywords.has('DSN'),
    pipelining: keywords.has('PIPELINING'),
    enhancedStatusCodes: keywords.has('ENHANCEDSTATUSCODES'),
    starttls: keywords.has('STARTTLS'),
    xclient: xclientArgs === undefined ? null : new Set(xclientArgs.map((a) => a.toUpperCase())),
  });
}

function sizeLimit(arg: string | undefined): number {
  return arg !== undefined && /^[0-9]{1,15}$/.test(arg) ? Number(arg) : 0;
}

/** RFC 3461 §4: xtext. Bytes outside "!".."~", and "+" and "=", become "+XX". */
export function encodeXtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d
      ? String.fromCharCode(byte)
      : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const NOTIFY = /^(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)$/i;
const ORCPT = /^([A-Za-z0-9-]{1,32});(.+)$/s;

/** MAIL FROM parameters, as "KEY=value" tokens, for what the backend advertised. */
export function mailParameters(raw: SmtpParams, caps: Capabilities): string[] {
  const out: string[] = [];
  for (const [key, value] of normalised(raw)) {
    switch (key) {
      case 'SIZE': // RFC 1870 §6
        if (caps.size !== null && typeof value === 'string' && /^[0-9]{1,20}$/.test(value)) out.push(`SIZE=${value}`);
        break;
      case 'BODY': // RFC 6152 §2; BINARYMIME needs CHUNKING, which we never send
        if (caps.eightBitMime && typeof value === 'string' && /^(?:7BIT|8BITMIME)$/i.test(value)) out.push(`BODY=${value.toUpperCase()}`);
        break;
      case 'SMTPUTF8': // RFC 6531 §3.4: no value
        if (caps.smtpUtf8 && value === true) out.push('SMTPUTF8');
        break;
      case 'RET': // RFC 3461 §4.3
        if (caps.dsn && typeof value === 'string' && /^(?:FULL|HDRS)$/i.test(value)) out.push(`RET=${value.toUpperCase()}`);
        break;
      case 'ENVID': // RFC 3461 §4.4: xtext, at most 100 characters
        if (caps.dsn && typeof value === 'string' && value.length > 0 && value.length <= 100) out.push(`ENVID=${encodeXtext(value)}`);
        break;
      default: // AUTH=, REQUIRETLS, MT-PRIORITY…: not ours to pass on
    }
  }
  return out;
}

/** RCPT TO parameters, as "KEY=value" tokens, for what the backend advertised. */
export function rcptParameters(raw: SmtpParams, caps: Capabilities): string[] {
  const out: string[] = [];
  if (!caps.dsn) return out;
  for (const [key, value] of normalised(raw)) {
    if (typeof value !== 'string') continue;
    if (key === 'NOTIFY' && NOTIFY.test(value)) out.push(`NOTIFY=${value.toUpperCase()}`); // RFC 3461 §4.1
    if (key === 'ORCPT' && value.length <= 500) { // RFC 3461 §4.2: addr-type ";" xtext
      const match = ORCPT.exec(value);
      if (match?.[1] && match[2]) out.push(`ORCPT=${match[1]};${encodeXtext(match[2])}`);
    }
  }
  return out;
}

/** Upper-case keys, the first occurrence of each. */
function normalised(raw: SmtpParams): Map<string, string | true> {
  const map = new Map<string, string | true>();
  for (const [key, value] of Object.entries(raw)) {
    const upper = key.toUpperCase();
    if (!map.has(upper)) map.set(upper, value);
  }
  return map;
}

export interface XclientAttributes {
  /** Client IP, textual, without "::ffff:". */
  readonly addr: string;
  /** Reverse name; null when there is none (sent as [UNAVAILABLE]); undefined: not sent. */
  readonly name?: string | null;
  /** HELO/EHLO argument; '' is sent as [UNAVAILABLE]; undefined: not sent. */
  readonly helo?: string;
  readonly proto?: 'SMTP' | 'ESMTP';
  readonly port?: number;
}

const UNAVAILABLE = '[UNAVAILABLE]';

/**
 * XCLIENT "NAME=value" tokens for the attributes the backend offered (Postfix XCLIENT_README:
 * values xtext-encoded, [UNAVAILABLE] for an unknown value, IPv6 addresses as "IPV6:addr").
 */
export function xclientArguments(attrs: XclientAttributes, offered: ReadonlySet<string>): string[] {
  const values: Array<[string, string | undefined]> = [
    ['ADDR', attrs.addr === '' ? UNAVAILABLE : isIPv6(attrs.addr) ? `IPV6:${attrs.addr}` : attrs.addr],
    ['NAME', attrs.name === undefined ? undefined : attrs.name === null || attrs.name === '' ? UNAVAILABLE : attrs.name],
    ['PORT', attrs.port === undefined ? undefined : String(attrs.port)],
    ['PROTO', attrs.proto],
    ['HELO', attrs.helo === undefined ? undefined : attrs.helo === '' ? UNAVAILABLE : attrs.helo],
  ];
  return values
    .filter((entry): entry is [string, string] => entry[1] !== undefined && offered.has(entry[0]))
    .map(([key, value]) => `${key}=${encodeXtext(value)}`);
}
