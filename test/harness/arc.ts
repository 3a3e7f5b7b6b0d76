/**
 * A mailing list as the tests' forwarder: it authenticates the original message the way a
 * real list server does (mailauth against the test's loopback DNS), changes it (subject tag,
 * footer: the author's DKIM signature breaks), and ARC-seals the result with its own key
 * (RFC 8617 §5.1), recording what it found in the ARC-Authentication-Results.
 */
import { promises as dns } from 'node:dns';
import { authenticate, sealMessage, type DNSResolver } from 'mailauth';
import type { DkimKey } from './mail.ts';

/** mailauth's resolver seam over the loopback DNS server. */
export function loopbackResolver(port: number): DNSResolver {
  const r = new dns.Resolver({ timeout: 2_000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  return ((name: string, rrtype: string) => r.resolve(name, rrtype)) as DNSResolver;
}

export interface ListOptions {
  readonly resolver: DNSResolver;
  /** The list's sealing domain and key (published at <selector>._domainkey.<domain>). */
  readonly domain: string;
  readonly selector: string;
  readonly key: DkimKey;
  /** Where the original came from, as the list saw it. */
  readonly received: { readonly ip: string; readonly helo: string; readonly sender: string };
  /** Replaces what the list writes into its ARC-Authentication-Results (a lying or mistaken sealer). */
  readonly authResults?: string;
}

/** The original as the list forwards it: tagged, with a footer, and ARC-sealed. */
export async function forwardThroughList(original: string, o: ListOptions): Promise<string> {
  const found = await authenticate(original, { resolver: o.resolver, ip: o.received.ip, helo: o.received.helo, sender: o.received.sender, mta: o.domain, disableBimi: true });
  // "Authentication-Results: lists.example; spf=pass …" → the payload after the field name
  const payload = o.authResults ?? found.headers.replace(/^[\s\S]*?Authentication-Results:\s*/i, '').replace(/\r?\n\s+/g, ' ').trim();
  const changed = original
    .replace(/^Subject: (.*)$/m, 'Subject: [list] $1')
    .replace(/\r\n$/, '\r\n-- \r\nYou are subscribed to the list.\r\n');
  const seal = await sealMessage(Buffer.from(changed), {
    signingDomain: o.domain, selector: o.selector, privateKey: o.key.privateKey, authResults: payload, cv: 'none',
  });
  if (seal.length === 0) throw new Error('sealing failed');
  return seal.toString('utf8') + changed;
}
