/**
 * Where a report goes: the mailto: URIs of rua= (RFC 9989 §4.7), and the check that a
 * destination outside the policy domain's Organizational Domain agreed to receive its reports
 * (RFC 9990 §3, "Verifying External Destinations": a TXT record starting "v=DMARC1" at
 * <policy-domain>._report._dmarc.<destination-host>, which may name other URIs at that host).
 */
import { createRequire } from 'node:module';
import type { DNSResolver } from 'mailauth';

const require = createRequire(import.meta.url);
const { createRecordLookup, getOrgDomain } = require('mailauth/lib/dmarc/get-dmarc-record.js') as {
  createRecordLookup: (resolver: DNSResolver, opts: { strict: boolean }) => (name: string) => Promise<unknown>;
  getOrgDomain: (domain: string, lookup: (name: string) => Promise<unknown>) => Promise<string>;
};

/** At most this many destinations per report domain: a record cannot make us mail a crowd. */
export const MAX_DESTINATIONS = 4;
const ADDRESS = /^[^\s@<>()[\]\\,;:"]+@[a-z0-9-]+(\.[a-z0-9-]+)+$/;

/** Mail addresses from rua= URIs: mailto only, "!size" suffixes dropped (RFC 9989 §4.7 obsolete), deduplicated. */
export function mailtoAddresses(rua: readonly string[]): string[] {
  const out: string[] = [];
  for (const uri of rua) {
    const m = /^mailto:([^?!]+)/i.exec(uri.trim());
    if (!m) continue;
    let address: string;
    try {
      address = decodeURIComponent(m[1]!).trim();
    } catch {
      continue;
    }
    const at = address.lastIndexOf('@');
    address = `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`;
    if (at > 0 && ADDRESS.test(address) && !out.includes(address)) out.push(address);
  }
  return out.slice(0, MAX_DESTINATIONS);
}

/**
 * What the check allows: deliver to `to` (the destination itself, or the addresses the
 * destination's record names in its stead), or not at all (final), or not yet (a DNS error).
 */
export type Verification =
  | { readonly result: 'ok'; readonly to: readonly string[] }
  | { readonly result: 'refused'; readonly detail: string }
  | { readonly result: 'temperror' };

const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA', 'EBADNAME']);

/**
 * RFC 9989 §4.7 tag syntax as RFC 9990 §3 step 6 uses it: "v=DMARC1" first (the tag name is
 * case-insensitive, RFC 7405; the value "DMARC1" is not), spaces allowed around "=" and ";",
 * a trailing ";" optional. The tags (names lower-cased), or null when this is no such record.
 */
export function parseVerificationRecord(record: string): Map<string, string> | null {
  const text = record.trim();
  if (!/^[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)/.test(text)) return null;
  const tags = new Map<string, string>();
  for (const part of text.split(';')) {
    const m = /^[ \t]*([A-Za-z]+)[ \t]*=[ \t]*(.*?)[ \t]*$/.exec(part);
    // a malformed tag, or a repeated one, is ignored (RFC 9989 §4.7: syntax errors are discarded)
    if (m && !tags.has(m[1]!.toLowerCase())) tags.set(m[1]!.toLowerCase(), m[2]!);
  }
  return tags;
}

/** The host of a report URI (RFC 3986 authority; for mailto: the address's domain), lower-case; null when none. */
function uriHost(uri: string): string | null {
  const mailto = /^mailto:([^?!]+)/i.exec(uri);
  if (mailto) {
    let address: string;
    try {
      address = decodeURIComponent(mailto[1]!);
    } catch {
      return null;
    }
    const at = address.lastIndexOf('@');
    return at > 0 ? address.slice(at + 1).trim().toLowerCase() : null;
  }
  try {
    return new URL(uri.replace(/!\d+[kmgt]?$/i, '')).hostname.toLowerCase() || null;
  } catch {
    return null;
  }
}

/**
 * RFC 9990 §3: same Organizational Domain (RFC 9989 §4.10.2 Tree Walk) → ok; else the
 * destination must publish a record starting v=DMARC1 at <policy-domain>._report._dmarc.<host>.
 * When that record has the report tag itself (rua=, or ruf= for failure reports, RFC 9991 §5),
 * its URIs replace the destination, and every one of them must be at the same host: else
 * nothing is sent, neither to the destination nor to the override (step 9 and the paragraph
 * after it). A DNS failure is a temperror: the report is retried later, never sent unverified.
 */
export async function verifyDestination(policyDomain: string, destination: string, resolver: DNSResolver, tag: 'rua' | 'ruf' = 'rua'): Promise<Verification> {
  const host = destination.slice(destination.lastIndexOf('@') + 1).toLowerCase();
  const name = `${policyDomain}._report._dmarc.${host}`;
  try {
    if (host === policyDomain) return { result: 'ok', to: [destination] };
    const lookup = createRecordLookup(resolver, { strict: true });
    const [a, b] = await Promise.all([getOrgDomain(policyDomain, lookup), getOrgDomain(host, lookup)]);
    if (a === b) return { result: 'ok', to: [destination] };
  } catch {
    return { result: 'temperror' };
  }
  let records: string[];
  try {
    const txt = (await resolver(name, 'TXT')) as unknown as Array<string | string[]>;
    records = txt.map((r) => (Array.isArray(r) ? r.join('') : String(r)));
  } catch (err) {
    if (!NO_RECORD.has((err as { code?: string }).code ?? '')) return { result: 'temperror' };
    records = [];
  }
  const valid = records.map(parseVerificationRecord).filter((r): r is Map<string, string> => r !== null);
  if (valid.length === 0) return { result: 'refused', detail: `${name} does not authorise this destination (no v=DMARC1 record, RFC 9990 §3)` };
  const override = valid.map((r) => r.get(tag)).find((v) => v !== undefined && v !== '');
  if (override === undefined) return { result: 'ok', to: [destination] };
  const uris = override.split(',').map((u) => u.trim()).filter(Boolean);
  const elsewhere = uris.find((u) => uriHost(u) !== host);
  if (elsewhere !== undefined) {
    return { result: 'refused', detail: `${name} redirects ${tag}= to ${elsewhere}, not at ${host}: nothing is sent (RFC 9990 §3)` };
  }
  const to = mailtoAddresses(uris);
  if (to.length === 0) return { result: 'refused', detail: `${name} redirects ${tag}= to no mailto: URI (RFC 9990 §3)` };
  return { result: 'ok', to };
}
