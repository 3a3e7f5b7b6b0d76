/**
 * Where a report goes: the mailto: URIs of rua= (RFC 9989 §4.7), and the check that a
 * destination outside the policy domain's Organizational Domain agreed to receive its reports
 * (RFC 9990 §3, "Verifying External Destinations": a TXT record starting "v=DMARC1" at
 * <policy-domain>._report._dmarc.<destination-host>).
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

export type Verification = 'ok' | 'refused' | 'temperror';

const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA', 'EBADNAME']);

/**
 * RFC 9990 §3: same Organizational Domain (RFC 9989 §4.10.2 Tree Walk) → ok; else the
 * destination must publish v=DMARC1 at <policy-domain>._report._dmarc.<destination>. A DNS
 * failure is a temperror: the report is retried later, never sent unverified.
 */
export async function verifyDestination(policyDomain: string, destination: string, resolver: DNSResolver): Promise<Verification> {
  const host = destination.slice(destination.lastIndexOf('@') + 1);
  try {
    if (host === policyDomain) return 'ok';
    const lookup = createRecordLookup(resolver, { strict: true });
    const [a, b] = await Promise.all([getOrgDomain(policyDomain, lookup), getOrgDomain(host, lookup)]);
    if (a === b) return 'ok';
  } catch {
    return 'temperror';
  }
  let records: string[];
  try {
    const txt = (await resolver(`${policyDomain}._report._dmarc.${host}`, 'TXT')) as unknown as Array<string | string[]>;
    records = txt.map((r) => (Array.isArray(r) ? r.join('') : String(r)).trim());
  } catch (err) {
    return NO_RECORD.has((err as { code?: string }).code ?? '') ? 'refused' : 'temperror';
  }
  return records.some((r) => /^v=DMARC1(\s*;|\s*$)/.test(r)) ? 'ok' : 'refused';
}
