/**
 * Errors shaped like node's DNS errors (`dns.promises.resolve`), because mailauth branches on
 * `err.code`: ENOTFOUND/ENODATA are "no record", EBADNAME is a name that can not be a DNS name,
 * everything else is a temporary error.
 */
export type DnsErrorCode =
  | 'ENOTFOUND' // NXDOMAIN
  | 'ENODATA' // NOERROR without records of the type asked
  | 'ETIMEOUT'
  | 'ESERVFAIL'
  | 'EREFUSED'
  | 'EFORMERR'
  | 'ENOTIMP'
  | 'EBADRESP' // malformed answer, unusable CNAME chain, unknown RCODE
  | 'ECONNREFUSED' // socket-level failure talking to the server
  | 'EBADNAME' // rejected locally: never sent
  | 'EINVAL' // not an IP address (reverse)
  | 'ECANCELLED'; // resolver closed

/** Temporary failures: never cached, and worth asking the next server. */
export const TEMPORARY_CODES: ReadonlySet<DnsErrorCode> = new Set<DnsErrorCode>([
  'ETIMEOUT', 'ESERVFAIL', 'EREFUSED', 'EFORMERR', 'ENOTIMP', 'EBADRESP', 'ECONNREFUSED',
]);

export interface DnsError extends Error {
  code: DnsErrorCode;
  syscall: string;
  hostname: string;
}

/** node names the syscall after the record type: queryTxt, queryMx, getHostByAddr, … */
export function syscallFor(rrtype: string): string {
  const t = rrtype.toUpperCase();
  return `query${t.charAt(0)}${t.slice(1).toLowerCase()}`;
}

/**
 * A fresh error per caller: mailauth writes `spfResult` onto the errors it gets. These are
 * answers (NXDOMAIN, NODATA, …), several per message, not bugs: no stack trace is captured
 * (capturing one costs more than serving the answer from the cache).
 */
export function dnsError(code: DnsErrorCode, syscall: string, hostname: string, detail?: string): DnsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(`${syscall} ${code} ${hostname}${detail ? ` (${detail})` : ''}`) as DnsError;
  Error.stackTraceLimit = limit;
  err.code = code;
  err.syscall = syscall;
  err.hostname = hostname;
  return err;
}

/** RFC 1035 §4.1.1 RCODE → node's code (0 and 3 are handled by the caller). */
export function codeForRcode(rcode: number): DnsErrorCode {
  switch (rcode) {
    case 1: return 'EFORMERR';
    case 2: return 'ESERVFAIL';
    case 4: return 'ENOTIMP';
    case 5: return 'EREFUSED';
    default: return 'EBADRESP';
  }
}
