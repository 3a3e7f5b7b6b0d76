import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** RFC 1035 §2.3.4: labels of 63 octets at most, names of 255 octets on the wire (253 as text). */
const MAX_LABEL_OCTETS = 63;
const MAX_NAME_OCTETS = 253;

export type NameCheck = { readonly ok: true; readonly name: string } | { readonly ok: false; readonly reason: string };

/**
 * Checks that a name can be put in a question as it is. Any octet is allowed in a label (RFC 2181 §11:
 * SPF macros produce ':' '/' ' '), but not an empty label, and not control characters, which no
 * mail name carries and which the packet encoder does not escape. One trailing dot is dropped.
 */
export function checkQueryName(input: string): NameCheck {
  const name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (name.length === 0) return { ok: false, reason: 'empty name' };
  if (/[\x00-\x1f\x7f]/.test(name)) return { ok: false, reason: 'control character in name' };
  if (Buffer.byteLength(name) > MAX_NAME_OCTETS) return { ok: false, reason: 'name longer than 253 octets' };
  for (const label of name.split('.')) {
    if (label.length === 0) return { ok: false, reason: 'empty label' };
    if (Buffer.byteLength(label) > MAX_LABEL_OCTETS) return { ok: false, reason: 'label longer than 63 octets' };
  }
  return { ok: true, name };
}

/** RFC 1035 §3.5 in-addr.arpa / RFC 3596 §2.5 ip6.arpa name of an address; null if `ip` is not one. */
export function reverseName(ip: string): string | null {
  const family = isIP(ip);
  if (family === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (family !== 6) return null;
  const bytes = ipaddr.IPv6.parse(ip.split('%')[0] ?? ip).toByteArray();
  const nibbles: string[] = [];
  for (const byte of bytes) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}
