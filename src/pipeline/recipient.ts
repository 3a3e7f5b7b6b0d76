/**
 * Recipient acceptance: only our own domains, never anything a backend could read as a
 * route. Postfix honours `%` and `!` in local parts and source routes when the client is in
 * mynetworks (which Postern is), so letting them through would make the backend relay for us
 * (DESIGN.md, "Facts about Postfix").
 */
import { domainMatcher, isMailDomain, normaliseDomain, parseDomainPattern, type DomainPattern } from '../core/domain.ts';
import { addressProblem } from './address-syntax.ts';

export type RecipientCheck =
  | { ok: true; address: string; domain: string }
  | { ok: false; why: 'relay-denied' | 'routing-syntax' | 'bad-address' | 'non-ascii' };

/** Domains as configured (src/core/domain.ts): "example.com" exact, ".example.com" / "*.example.com" its subdomains. */
export interface DomainSet {
  has(domain: string): boolean;
  /** The first configured exact domain: where a bare <postmaster> goes. */
  readonly primary: string | null;
}

/** `domains` entries were checked at load (config schema): an entry that does not parse is skipped. */
export function domainSet(domains: readonly string[]): DomainSet {
  const patterns = domains.map(parseDomainPattern).flatMap((p): DomainPattern[] => (p.ok ? [p.pattern] : []));
  const matcher = domainMatcher(patterns);
  return { has: matcher.matches, primary: matcher.exact[0] ?? null };
}

/** `smtputf8`: MAIL FROM carried SMTPUTF8, so a UTF-8 address is allowed (RFC 6531 §3.5). */
export function checkRecipient(raw: string, domains: DomainSet, smtputf8 = false): RecipientCheck {
  const address = raw.trim();
  // RFC 5321 §4.5.1: a bare "postmaster" (no domain) must be accepted; it means ours.
  if (address.toLowerCase() === 'postmaster' && domains.primary) {
    return { ok: true, address: `postmaster@${domains.primary}`, domain: domains.primary };
  }
  const problem = addressProblem(address, smtputf8);
  if (problem) return { ok: false, why: problem === 'non-ascii' ? 'non-ascii' : 'bad-address' };
  // RFC 5321 §4.1.1.3 / Appendix C: source routes "@a,@b:user@dom" must not be relayed.
  if (address.startsWith('@') || /^[^"]*:/.test(address.split('@')[0] ?? '')) return { ok: false, why: 'routing-syntax' };
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return { ok: false, why: 'bad-address' };
  const local = address.slice(0, at);
  const rawDomain = address.slice(at + 1);
  if (rawDomain.startsWith('[')) return { ok: false, why: 'relay-denied' }; // address literal: not one of our domains
  // '%' and '!' are the old sendmail routing operators, and Postfix honours them for its
  // mynetworks (allow_percent_hack). They may hide behind quotes or a backslash escape
  // ("a%b"@, a\%b@), which the backend removes before routing: judge the dequoted form, and
  // refuse escapes outright (no legitimate inbound address needs one).
  if (local.includes('\\') || /[%!@:]/.test(local.replace(/^"|"$/g, ''))) {
    return { ok: false, why: 'routing-syntax' };
  }
  const domain = normaliseDomain(rawDomain);
  if (!isMailDomain(domain)) return { ok: false, why: 'bad-address' };
  if (!domains.has(domain)) return { ok: false, why: 'relay-denied' };
  return { ok: true, address: `${local}@${domain}`, domain };
}
