/**
 * Forward-confirmed reverse DNS (RFC 8601 §3 "iprev"): a PTR name counts as the client's name
 * only when that name resolves back to the client's address. Anyone controls the PTR records
 * of their own addresses, so an unconfirmed name must not be shown as the client's name: not
 * in Received, not to policy rules (ptr), not to the backend as XCLIENT NAME (Postfix trusts
 * it as verified).
 */
import { isIPv6 } from 'node:net';
import { normaliseIp } from '../core/ip.ts';
import type { DnsResolver } from './types.ts';

/** At most this many PTR names are checked (a client can publish many). */
const MAX_NAMES = 3;

export async function confirmedNames(resolver: Pick<DnsResolver, 'resolve' | 'reverse'>, ip: string): Promise<string[]> {
  const addr = normaliseIp(ip);
  if (!addr) return [];
  let names: string[];
  try {
    names = await resolver.reverse(addr);
  } catch {
    return [];
  }
  const type = isIPv6(addr) ? 'AAAA' : 'A';
  const confirmed: string[] = [];
  for (const name of names.slice(0, MAX_NAMES)) {
    try {
      const addresses = (await resolver.resolve(name, type));
      if (addresses.some((a) => normaliseIp(a) === addr)) confirmed.push(name);
    } catch {
      // no forward record: not confirmed
    }
  }
  return confirmed;
}

/** smtp-server's `resolver.reverse` shape, answering only confirmed names. */
export function confirmedReverseCallback(resolver: Pick<DnsResolver, 'resolve' | 'reverse'>): (ip: string, cb: (err: Error | null, names?: string[]) => void) => void {
  return (ip, cb) => {
    confirmedNames(resolver, ip).then((names) => cb(null, names), (err: Error) => cb(err));
  };
}
