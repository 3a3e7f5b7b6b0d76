import { domainToASCII } from 'node:url';
import { foldLine, sanitiseFieldValue } from '../message/fold.ts';

/**
 * The Authentication-Results field value we add (RFC 8601 §2.2):
 *   authserv-id ";" CRLF SP resinfo ";" CRLF SP resinfo ...
 * Every method is always present (spf, one dkim per signature or dkim=none, arc, dmarc), so a
 * downstream reader never has to guess whether a check ran.
 */

// RFC 2045 §5.1 token: any CHAR except SPACE, CTLs and tspecials
const TOKEN = /^[^\x00-\x20\x7f()<>@,;:\\"/[\]?=]+$/;

/**
 * RFC 8601 §2.5: the authserv-id is a token (usually our host name, A-label form) or else a
 * quoted-string. Throws TypeError for an empty value or one with control characters: that is
 * a configuration error, not something to paper over in a header.
 */
export function formatAuthservId(hostname: string): string {
  const trimmed = hostname.trim();
  // only non-ASCII names need IDNA
  const value = /[^\x00-\x7f]/.test(trimmed) ? domainToASCII(trimmed.toLowerCase()) || trimmed : trimmed;
  if (value && TOKEN.test(value)) return value;
  // a CTL cannot be written even quoted
  if (!value || /[\x00-\x1f\x7f]/.test(value)) {
    throw new TypeError(`invalid authserv-id ${JSON.stringify(hostname)}: expecting a host name`);
  }
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The resinfo strings, as mailauth formats them ("spf=pass (...) smtp.mailfrom=..."). */
export interface ResInfos {
  readonly spf: string;
  /** One entry per DKIM signature; an empty list is written as "dkim=none". */
  readonly dkim: readonly string[];
  readonly arc: string;
  readonly dmarc: string;
}

/** One resinfo on its own continuation line, folded at whitespace when long. */
function resinfoLine(resinfo: string, last: boolean): string {
  const text = sanitiseFieldValue(resinfo).replace(/\r\n/g, '').trim();
  return `\r\n${foldLine(` ${text}${last ? '' : ';'}`)}`;
}

/** The field value (without "Authentication-Results: "), ready for prependHeaders. */
export function buildAuthResults(authservId: string, infos: ResInfos): string {
  const dkim = infos.dkim.length > 0 ? infos.dkim : ['dkim=none'];
  const entries = [infos.spf, ...dkim, infos.arc, infos.dmarc];
  return `${formatAuthservId(authservId)};${entries.map((e, i) => resinfoLine(e, i === entries.length - 1)).join('')}`;
}
