/**
 * IP and CIDR matching for the `ip` match key. Patterns are parsed once at load; the client
 * IP once per decide() call. IPv4-mapped IPv6 (::ffff:192.0.2.1, RFC 4291 §2.5.5.2) is
 * unwrapped on both sides, so a v4 CIDR matches a client seen through a dual-stack socket.
 */
import ipaddr from 'ipaddr.js';

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;

export type ClientIp =
  | { readonly kind: 'ipv4'; readonly value: number; readonly key: string }
  | { readonly kind: 'ipv6'; readonly addr: IPv6; readonly key: string };

export type IpMatcher = (ip: ClientIp) => boolean;

/** Strict parse: dotted-quad IPv4 only (no 0x7f.1 shorthands), no IPv6 zone id. */
function parseAddress(text: string): IPv4 | IPv6 | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return null;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

function v4Number(addr: IPv4): number {
  const [a = 0, b = 0, c = 0, d = 0] = addr.octets;
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

function v4Mask(bits: number): number {
  return bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
}

function toClientIp(addr: IPv4 | IPv6): ClientIp {
  return addr.kind() === 'ipv4'
    ? { kind: 'ipv4', value: v4Number(addr as IPv4), key: addr.toString() }
    : { kind: 'ipv6', addr: addr as IPv6, key: (addr as IPv6).toNormalizedString() };
}

/** The client IP from the facts, or null when it is not an address (then no `ip` rule matches). */
export function parseClientIp(text: string): ClientIp | null {
  const addr = parseAddress(text.trim());
  return addr ? toClientIp(addr) : null;
}

interface V4Range { readonly net: number; readonly mask: number }

/**
 * Compile IP/CIDR patterns. Returns the matcher, calling onError for each bad pattern (the
 * caller knows where the pattern was written). A CIDR with host bits set is refused: it is
 * almost always a typo for a narrower or wider network than intended.
 */
export function compileIpPatterns(patterns: readonly string[], onError: (index: number, problem: string) => void): IpMatcher {
  const exact = new Set<string>();
  const v4: V4Range[] = [];
  const v6: Array<[IPv6, number]> = [];
  patterns.forEach((raw, index) => {
    const text = raw.trim();
    const slash = text.indexOf('/');
    const addr = parseAddress(slash < 0 ? text : text.slice(0, slash));
    const bitsText = slash < 0 ? null : text.slice(slash + 1);
    if (!addr || (bitsText !== null && !/^\d{1,3}$/.test(bitsText))) {
      onError(index, `not an IP address or CIDR: "${text}"`);
      return;
    }
    const mappedV6 = slash >= 0 && addr.kind() === 'ipv4' && text.slice(0, slash).includes(':');
    // A mapped CIDR (::ffff:10.0.0.0/104) is the v4 network 10.0.0.0/8.
    const bits = bitsText === null ? (addr.kind() === 'ipv4' ? 32 : 128) : Number(bitsText) - (mappedV6 ? 96 : 0);
    const max = addr.kind() === 'ipv4' ? 32 : 128;
    if (bits < 0 || bits > max) {
      onError(index, `prefix length out of range in "${text}"`);
      return;
    }
    if (bits === max) {
      exact.add(toClientIp(addr).key);
      return;
    }
    if (addr.kind() === 'ipv4') {
      const value = v4Number(addr as IPv4);
      const mask = v4Mask(bits);
      if ((value & mask) >>> 0 !== value) {
        onError(index, `CIDR "${text}" has host bits set; the network is ${ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`).toString()}/${bits}`);
        return;
      }
      v4.push({ net: value, mask });
    } else {
      const network = ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${bits}`);
      if (network.toNormalizedString() !== (addr as IPv6).toNormalizedString()) {
        onError(index, `CIDR "${text}" has host bits set; the network is ${network.toString()}/${bits}`);
        return;
      }
      v6.push([addr as IPv6, bits]);
    }
  });
  return (ip) => {
    if (exact.has(ip.key)) return true;
    if (ip.kind === 'ipv4') return v4.some((r) => ((ip.value & r.mask) >>> 0) === r.net);
    return v6.some((range) => ip.addr.match(range));
  };
}
