/**
 * Domain and address patterns for helo, ptr, sender_domain, from_domain, dkim_domain and
 * recipient. `example.com` is exact; `.example.com` and `*.example.com` match any subdomain
 * but not the apex. Patterns go into Sets at load, so a match costs one lookup per label.
 */
import { domainMatcher, isValidDomain, normaliseDomain, parseDomainPattern, type DomainPattern } from '../core/domain.ts';

export type NameMatcher = (value: string) => boolean;

/** What a pattern list is matched against; it decides which pattern forms are valid. */
export type NameKind = 'domain' | 'helo' | 'recipient';

// RFC 5321 §4.1.3 address literal, as a HELO argument: [192.0.2.1] or [IPv6:2001:db8::1].
const ADDRESS_LITERAL = /^\[(?:[0-9.]+|ipv6:[0-9a-f:.]+)\]$/;
// A dot-atom or quoted local part; anything printable without spaces, compared lower-cased.
const LOCAL_PART = /^[\x21-\x3f\x41-\x7e]{1,64}$/;

/**
 * Compile patterns of one kind. Returns the matcher, calling onError(index, problem) for each
 * pattern that is not valid for the kind.
 */
export function compileNamePatterns(kind: NameKind, patterns: readonly string[], onError: (index: number, problem: string) => void): NameMatcher {
  const literals = new Set<string>();
  const domains: DomainPattern[] = [];
  const addresses = new Set<string>();
  patterns.forEach((raw, index) => {
    const text = raw.trim().toLowerCase();
    if (kind === 'helo' && ADDRESS_LITERAL.test(text)) {
      literals.add(text);
      return;
    }
    const at = text.lastIndexOf('@');
    if (at >= 0) {
      const local = text.slice(0, at);
      const domain = normaliseDomain(text.slice(at + 1));
      if (kind !== 'recipient') onError(index, `expected a domain pattern, got an address: "${raw}"`);
      else if (!LOCAL_PART.test(local) || !isValidDomain(domain)) onError(index, `not a valid address: "${raw}"`);
      else addresses.add(`${local}@${domain}`);
      return;
    }
    const parsed = parseDomainPattern(text);
    if (!parsed.ok) {
      onError(index, `not a valid domain pattern: "${raw}" (use example.com, .example.com or *.example.com)`);
      return;
    }
    domains.push(parsed.pattern);
  });
  const matcher = domainMatcher(domains);
  if (kind !== 'recipient') {
    return (value) => {
      const domain = normaliseDomain(value);
      return literals.has(domain) || matcher.matches(domain);
    };
  }
  return (value) => {
    const address = value.trim().toLowerCase();
    const at = address.lastIndexOf('@');
    if (at < 0) return false;
    const domain = normaliseDomain(address.slice(at + 1));
    return addresses.has(`${address.slice(0, at)}@${domain}`) || matcher.matches(domain);
  };
}
