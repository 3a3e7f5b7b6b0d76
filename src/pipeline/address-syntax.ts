/**
 * Envelope address checks that smtp-server does not make, for MAIL FROM and RCPT TO alike.
 *
 * smtp-server decodes the command line as UTF-8: a byte that is not valid UTF-8 becomes
 * U+FFFD, so "us\xE9r@" arrives as "us\uFFFDr@" and would be relayed to a mailbox that is not
 * the one the client named. And without the SMTPUTF8 parameter on MAIL FROM a local part must
 * be ASCII (RFC 6531 §3.5): the answer is 553 5.6.7. A domain in U-labels is accepted without
 * SMTPUTF8, as the A-labels it stands for (the conversion loses nothing, src/core/domain.ts);
 * a local part has no such form. A domain must be one DNS can hold (RFC 1035 §2.3.4: labels of
 * at most 63 octets, a name of at most 253 in text form).
 */
import { isValidDomain, normaliseDomain } from '../core/domain.ts';

export type AddressProblem =
  /** Not ASCII without SMTPUTF8, or not valid UTF-8 at all: 553 5.6.7. */
  | 'non-ascii'
  /** A domain that cannot exist: a label over 63 octets, a name over 253, an empty label. */
  | 'bad-domain';

/** The problem with `address` (local@domain, as smtp-server parsed it), or null. */
export function addressProblem(address: string, smtputf8: boolean): AddressProblem | null {
  if (address.includes('\uFFFD')) return 'non-ascii';
  const at = address.lastIndexOf('@');
  if (!smtputf8 && /[^\x00-\x7f]/.test(at < 0 ? address : address.slice(0, at))) return 'non-ascii';
  if (at < 0) return null; // no domain (<postmaster>, <>): judged by the caller
  const domain = address.slice(at + 1);
  if (domain.startsWith('[')) return null; // an address literal is not a DNS name
  // lengths are of the A-label form, the one DNS carries
  return isValidDomain(normaliseDomain(domain)) ? null : 'bad-domain';
}
