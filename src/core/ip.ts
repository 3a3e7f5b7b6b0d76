/** IP address normalisation and CIDR sets (ipaddr.js), parsed once and matched per connection. */
import ipaddr from 'ipaddr.js';

/** A dotted quad already in canonical form (no leading zeros, each part ≤ 255): returned as it is. */
const CANONICAL_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Canonical text form: IPv4-mapped IPv6 becomes IPv4, IPv6 is compressed lower-case. Invalid → null. */
export function normaliseIp(raw: string): string | null {
  // The usual case, several times per SMTP command: skip the parse.
  if (CANONICAL_V4.test(raw)) return raw;
  const text = raw.trim().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!ipaddr.isValid(text)) return null;
  const addr = ipaddr.parse(text);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (addr as ipaddr.IPv6).toIPv4Address().toString();
  }
  return addr.toString();
}

/**
 * What a per-client limit counts by: an IPv4 address itself, an IPv6 address by its network of
 * `v6Bits` (a /64 is usually one subscriber, who can use any of its 2^64 addresses). `ip` is
 * normalised text (normaliseIp).
 */
export function clientKey(ip: string, v6Bits: number): string {
  if (!ip.includes(':') || v6Bits >= 128) return ip;
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${ip}/${v6Bits}`).toString()}/${v6Bits}`;
}

export interface CidrSet {
  readonly size: number;
  has(ip: string): boolean;
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128). Throws on a bad entry, naming it. */
export function cidrSet(entries: readonly string[]): CidrSet {
  const ranges = entries.map((entry): [ipaddr.IPv4 | ipaddr.IPv6, number] => {
    const text = entry.trim();
    try {
      if (text.includes('/')) return ipaddr.parseCIDR(text);
      const addr = ipaddr.parse(text);
      return [addr, addr.kind() === 'ipv4' ? 32 : 128];
    } catch {
      throw new Error(`invalid IP address or CIDR "${entry}"`);
    }
  });
  return {
    size: ranges.length,
    has(ip: string): boolean {
      const norm = normaliseIp(ip);
      if (!norm || ranges.length === 0) return false;
      const addr = ipaddr.parse(norm);
      return ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
    },
  };
}
