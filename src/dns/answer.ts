import type * as packet from 'dns-packet';
import { codeForRcode, type DnsErrorCode } from './errors.ts';
import type { DnsAnswer, MxRecord } from './types.ts';

/** RFC 1034 §3.6.2 says to follow chains but not how far; 8 is what common resolvers allow. */
export const MAX_CNAME_CHAIN = 8;

/** What one response means for the question, before TTL capping. `ttl` in seconds; null = no TTL known. */
export type Interpretation =
  | { readonly ok: true; readonly answer: DnsAnswer; readonly ttl: number }
  | { readonly ok: false; readonly code: DnsErrorCode; readonly ttl: number | null; readonly detail?: string };

const RCODE_MASK = 0xf;
const NOERROR = 0;
const NXDOMAIN = 3;

const lower = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();

/**
 * Turns a response from a recursive server into node's answer shape or error code. The server
 * puts the whole CNAME chain in the answer section (RFC 1034 §4.3.2 step 3a); we follow it from
 * the name asked, so unrelated records in the answer are never taken for ours.
 */
export function interpret(response: packet.DecodedPacket, qname: string, qtype: string): Interpretation {
  const rcode = (response.flags ?? 0) & RCODE_MASK;
  if (rcode !== NOERROR && rcode !== NXDOMAIN) return { ok: false, code: codeForRcode(rcode), ttl: null };
  const answers = (response.answers ?? []).filter((a) => a.type !== 'OPT' && (a.class ?? 'IN') === 'IN');

  let current = lower(qname);
  const seen = new Set([current]);
  let chainTtl = Infinity;
  for (let hops = 0; ; hops++) {
    const owner = current;
    const records = answers.filter((a) => a.type === qtype && lower(a.name) === owner);
    if (records.length > 0 && rcode === NOERROR) {
      const ttl = Math.min(chainTtl, ...records.map((r) => ('ttl' in r ? r.ttl ?? 0 : 0)));
      return { ok: true, answer: shape(qtype, records), ttl };
    }
    const cname = qtype === 'CNAME' ? undefined
      : answers.find((a): a is packet.StringAnswer => a.type === 'CNAME' && lower(a.name) === owner);
    if (cname === undefined) break;
    if (hops >= MAX_CNAME_CHAIN) return { ok: false, code: 'EBADRESP', ttl: null, detail: 'CNAME chain longer than 8' };
    current = lower(cname.data);
    if (seen.has(current)) return { ok: false, code: 'EBADRESP', ttl: null, detail: 'CNAME loop' };
    seen.add(current);
    chainTtl = Math.min(chainTtl, cname.ttl ?? 0);
  }
  // RFC 6604 §3: after a CNAME chain the RCODE is that of the last name
  return { ok: false, code: rcode === NXDOMAIN ? 'ENOTFOUND' : 'ENODATA', ttl: negativeTtl(response) };
}

/** RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM); without an SOA not at all. */
function negativeTtl(response: packet.DecodedPacket): number | null {
  const soa = (response.authorities ?? []).find((a): a is packet.SoaAnswer => a.type === 'SOA');
  if (soa === undefined) return null;
  return Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
}

/** RFC 1035 §3.3: character-strings, each a length octet and that many octets. */
function characterStrings(rdata: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < rdata.length; ) {
    const len = rdata[i] ?? 0;
    out.push(rdata.toString('latin1', i + 1, Math.min(rdata.length, i + 1 + len)));
    i += 1 + len;
  }
  return out;
}

/** Octets as node's resolveTxt gives them: one char per octet, so nothing is lost or reinterpreted. */
function txtStrings(data: unknown): string[] {
  const parts = Array.isArray(data) ? data : [data];
  return parts.map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : String(p)));
}

function shape(qtype: string, records: packet.Answer[]): DnsAnswer {
  switch (qtype) {
    case 'TXT':
      return records.map((r) => txtStrings(r.type === 'TXT' ? r.data : []));
    case 'SPF': // type 99 has TXT's RDATA format (RFC 4408 §3.1.1); dns-packet leaves it raw
      return records.map((r) => ('data' in r && Buffer.isBuffer(r.data) ? characterStrings(r.data) : []));
    case 'MX':
      return records.flatMap((r): MxRecord[] => r.type === 'MX'
        // RFC 7505: the null MX "." is the empty name in node's shape
        ? [{ exchange: r.data.exchange === '.' ? '' : r.data.exchange, priority: r.data.preference ?? 0 }]
        : []);
    default:
      return records.flatMap((r) => ('data' in r && typeof r.data === 'string' ? [r.data] : []));
  }
}

/** A copy for each caller: cached and coalesced answers are shared, and mailauth sorts MX lists in place. */
export function cloneAnswer(answer: DnsAnswer): DnsAnswer {
  return answer.map((item) => (Array.isArray(item) ? [...item] : typeof item === 'string' ? item : { ...item })) as DnsAnswer;
}
