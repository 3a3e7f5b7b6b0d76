/**
 * Domain names, normalised once (STYLE §4.4): every part of Postern that compares a domain
 * (recipient domains, policy patterns, reputation subjects, auth results) goes through here,
 * so "Example.COM.", "example.com" and "bücher.example" / "xn--bcher-kva.example" are the same
 * name everywhere.
 *
 * Patterns, as written in `domains`, policy rules and list files:
 *   example.com      exactly this domain
 *   .example.com     any subdomain of it, not example.com itself
 *   *.example.com    the same as .example.com
 * This is Postfix's meaning of ".example.com" with parent_domain_matches_subdomains off
 * (postconf(5)): a leading dot or "*." never includes the parent; list both to get both.
 */
import { domainToASCII } from 'node:url';
import { parse as parsePsl } from 'tldts';

// RFC 1035 §2.3.1 letters, digits, hyphen; underscore too (RFC 8552 attrleaf names in d=).
// Labels of 1-63 octets, the whole name at most 253 (RFC 1035 §2.3.4 without the root).
const DOMAIN = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

/**
 * Lower-case A-label form (RFC 5890: U-labels are compared as A-labels, RFC 8616 §4) without
 * the root dot. An address literal ("[192.0.2.1]") is only trimmed and lower-cased. A name
 * that IDNA cannot convert gives ''.
 */
export function normaliseDomain(value: string | null | undefined): string {
  let d = (value ?? '').trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d === '' || d.startsWith('[')) return d;
  // only non-ASCII names need IDNA; ASCII is already in A-label form once lower-cased
  return /[^\x00-\x7f]/.test(d) ? domainToASCII(d) : d;
}

/** A syntactically valid (normalised) domain name: labels of letters, digits, '-' and '_'. */
export function isValidDomain(domain: string): boolean {
  return domain.length > 0 && domain.length <= 253 && DOMAIN.test(domain);
}

/** A domain that can appear in a mail address: RFC 5321 §4.1.2 Domain has letters, digits and hyphens, no underscore. */
export function isMailDomain(domain: string): boolean {
  return isValidDomain(domain) && !domain.includes('_');
}

/** The domain after the last "@" of an address (a quoted local part may hold an "@"), normalised. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return normaliseDomain(at >= 0 ? address.slice(at + 1) : address);
}

/** The public suffix (ICANN or private section of the Public Suffix List) `domain` is, or null. */
export function publicSuffixOf(domain: string): string | null {
  // allowPrivateDomains: a hosting provider's shared parent (github.io, s3.amazonaws.com)
  // has as many owners as a TLD; `.github.io` would relay for all of them.
  const parsed = parsePsl(domain, { allowPrivateDomains: true });
  // `domain` null: the name has no registrable part, it is itself a suffix (com, co.uk) or
  // a bare label the PSL's default rule "*" makes a TLD (localhost, internal).
  return parsed.domain === null ? (parsed.publicSuffix ?? domain) : null;
}

/**
 * The registrable domain by the Public Suffix List (RFC 7489 §3.2's Organizational Domain), or
 * the domain itself when it has none. Offline, so an approximation of RFC 9989's DNS Tree Walk:
 * for configuration checks, and for which DKIM signatures to verify first past the cap
 * (message/dkim-selection.ts), never for a DMARC verdict.
 */
export function registrableDomainOf(domain: string): string {
  const name = normaliseDomain(domain);
  return parsePsl(name, { allowPrivateDomains: true }).domain ?? name;
}

export type DomainPattern = { readonly domain: string; readonly subdomains: boolean };

/** Parses one pattern (example.com, .example.com, *.example.com); a problem in words, or the pattern. */
export function parseDomainPattern(raw: string): { ok: true; pattern: DomainPattern } | { ok: false; problem: string } {
  const text = raw.trim();
  const prefix = text.startsWith('*.') ? 2 : text.startsWith('.') ? 1 : 0;
  const rest = text.slice(prefix);
  if (rest === '' || rest === '.' || text === '*') {
    return { ok: false, problem: `"${raw}" covers every domain (the DNS root)` };
  }
  if (rest.includes('*')) return { ok: false, problem: `"${raw}": a wildcard is allowed only as a leading "*." (use example.com, .example.com or *.example.com)` };
  const domain = normaliseDomain(rest);
  if (!isValidDomain(domain)) return { ok: false, problem: `"${raw}" is not a domain name (use example.com, .example.com or *.example.com)` };
  return { ok: true, pattern: { domain, subdomains: prefix > 0 } };
}

/**
 * A `domains` entry: a pattern that must not cover a public suffix, because every address
 * under it would be accepted and relayed to the backend, which trusts Postern (an open relay
 * made from a typo). Returns the normalised pattern text or the problem.
 */
export function checkServedDomain(raw: string): { ok: true; text: string } | { ok: false; problem: string } {
  const parsed = parseDomainPattern(raw);
  if (!parsed.ok) return parsed;
  const { domain, subdomains } = parsed.pattern;
  if (!isMailDomain(domain)) return { ok: false, problem: `"${raw}" is not a mail domain (RFC 5321: letters, digits, hyphens)` };
  if (/^[0-9.]+$/.test(domain)) return { ok: false, problem: `"${raw}" is an IP address, not a domain name` };
  const suffix = publicSuffixOf(domain);
  if (suffix !== null) {
    return {
      ok: false,
      problem: `"${raw}" ${subdomains ? 'covers' : 'is'} the public suffix "${suffix}" (Public Suffix List): Postern would accept mail for every domain under it and relay it. List your own domains (example.com, or .example.com for its subdomains)`,
    };
  }
  return { ok: true, text: (subdomains ? '.' : '') + domain };
}

/** Matches normalised domains against a set of patterns in one Set lookup per label. */
export interface DomainMatcher {
  readonly matches: (domain: string) => boolean;
  /** Exact patterns, in the order given. */
  readonly exact: readonly string[];
  readonly size: number;
}

export function domainMatcher(patterns: readonly DomainPattern[]): DomainMatcher {
  const exact = new Set<string>();
  const parents = new Set<string>();
  for (const p of patterns) (p.subdomains ? parents : exact).add(p.domain);
  const matches = (domain: string): boolean => {
    if (exact.has(domain)) return true;
    if (parents.size === 0) return false;
    for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) {
      if (parents.has(domain.slice(i + 1))) return true;
    }
    return false;
  };
  return { matches, exact: [...exact], size: exact.size + parents.size };
}
