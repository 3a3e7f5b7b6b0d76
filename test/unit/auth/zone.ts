import type { DNSResolver } from 'mailauth';

/**
 * An in-memory zone behind mailauth's resolver seam. Keys are "TYPE name" ("TXT example.com");
 * a value is the answer, or an error code that is thrown the way node:dns does (err.code):
 * ENOTFOUND (NXDOMAIN), ENODATA (no record of the type), ETIMEOUT, ESERVFAIL. A name that is
 * not in the zone is ENOTFOUND.
 */
export type ZoneErrorCode = 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL';
export type Zone = Record<string, string[][] | ZoneErrorCode>;

export interface ZoneResolver {
  readonly resolver: DNSResolver;
  /** Every question asked, "TYPE name", in order. */
  readonly queries: string[];
}

export function zoneResolver(zone: Zone): ZoneResolver {
  const queries: string[] = [];
  const resolver: DNSResolver = (name, rrtype) => {
    const key = `${rrtype.toUpperCase()} ${name.toLowerCase().replace(/\.$/, '')}`;
    queries.push(key);
    const answer = zone[key] ?? 'ENOTFOUND';
    if (typeof answer === 'string') {
      const err = Object.assign(new Error(`${rrtype} ${name}: ${answer}`), { code: answer });
      return Promise.reject(err);
    }
    return Promise.resolve(answer.map((row) => [...row]));
  };
  return { resolver, queries };
}

/** A TXT answer of one record (split into 255-octet strings as DNS would). */
export function txt(record: string): string[][] {
  const chunks: string[] = [];
  for (let i = 0; i < record.length; i += 255) chunks.push(record.slice(i, i + 255));
  return [chunks];
}
