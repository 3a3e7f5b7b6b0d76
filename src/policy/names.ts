/**
 * Domain and address patterns for helo, ptr, sender_domain, from_domain, dkim_domain and
 * recipient. `example.com` is exact; `.example.com` and `*.example.com` match any subdomain
 * but not the apex. Patterns go into Sets at load, so a match costs one lookup per label.
 */
import { domainToASCII } from 'node:url';

export type NameMatcher = (value: string) => boolean;

/** What a pattern list is matched against; it decides which pattern forms are valid. */
export type NameKind = 'domain' | 'helo' | 'recipient';

// RFC 1035 §2.3.1 letters, digits, hyphen; underscore too (RFC 8552 attrleaf names in d=).
const DOMAIN = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;
// RFC 5321 §4.1.3 address literal, as a HELO argument: [192.0.2.1] or [IPv6:2001:db8::1].
const ADDRESS_LITERAL = /^\[(?:[0-9.]+|ipv6:[0-9a-f:.]+)\]$/;
// A dot-atom or quoted local part; anything printable without spaces, compared lower-cased.
const LOCAL_PART = /^[\x21-\x3f\x41-\x7e]{1,64}$/;

/** Lower-case, no trailing dot, IDNA A-labels (RFC 5890) so U-label and A-label forms compare equal. */
export function normaliseDomain(value: string): string {
  let d = value.trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (/[^\x00-\x7f]/.test(d)) d = domainToASCII(d);
  return d;
}

function validDomain(d: string): boolean {
  return d.length > 0 && d.length <= 253 && DOMAIN.test(d);
}

/** Look a domain and its parents up: exact set for the domain itself, suffix set for parents. */
function domainLookup(exact: ReadonlySet<string>, suffixes: ReadonlySet<string>, domain: string): boolean {
  if (exact.has(domain)) return true;
  if (suffixes.size === 0) return false;
  for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) {
    if (suffixes.has(domain.slice(i + 1))) return true;
  }
  return false;
}

/**
 * Compile patterns of one kind. Returns the matcher, calling onError(index, problem) for each
 * pattern that is not valid for the kind.
 */
export function compileNamePatterns(kind: NameKind, patterns: readonly string[], onError: (index: number, problem: string) => void): NameMatcher {
  const exact = new Set<string>();
  const suffixes = new Set<string>();
  const addresses = new Set<string>();
  patterns.forEach((raw, index) => {
    const text = raw.trim().toLowerCase();
    if (kind === 'helo' && ADDRESS_LITERAL.test(text)) {
      exact.add(text);
      return;
    }
    const at = text.lastIndexOf('@');
    if (at >= 0) {
      const local = text.slice(0, at);
      const domain = normaliseDomain(text.slice(at + 1));
      if (kind !== 'recipient') onError(index, `expected a domain pattern, got an address: "${raw}"`);
      else if (!LOCAL_PART.test(local) || !validDomain(domain)) onError(index, `not a valid address: "${raw}"`);
      else addresses.add(`${local}@${domain}`);
      return;
    }
    const subdomains = text.startsWith('*.') ? 2 : text.startsWith('.') ? 1 : 0;
    const domain = normaliseDomain(text.slice(subdomains));
    if (!validDomain(domain)) {
      onError(index, `not a valid domain pattern: "${raw}" (use example.com, .example.com or *.example.com)`);
      return;
    }
    (subdomains > 0 ? suffixes : exact).add(domain);
  });
  if (kind !== 'recipient') return (value) => domainLookup(exact, suffixes, normaliseDomain(value));
  return (value) => {
    const address = value.trim().toLowerCase();
    const at = address.lastIndexOf('@');
    if (at < 0) return false;
    const domain = normaliseDomain(address.slice(at + 1));
    return addresses.has(`${address.slice(0, at)}@${domain}`) || domainLookup(exact, suffixes, domain);
  };
}
