import type { Clock } from '../core/clock.ts';

/** A recursive DNS server to query: an IP literal and a port (never a name: resolving it would need DNS). */
export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

/** An MX answer, shaped as `dns.promises.resolve(name, 'MX')` returns it. */
export interface MxRecord {
  exchange: string;
  priority: number;
}

/** Every answer shape `resolve` can produce (those of `dns.promises.resolve`). */
export type DnsAnswer = string[] | string[][] | MxRecord[];

/** Outcome of one network lookup, a bounded metric label. */
export type DnsLookupOutcome = 'ok' | 'nxdomain' | 'nodata' | 'servfail' | 'refused' | 'unreachable' | 'timeout' | 'error';

/**
 * Observability seam (the observability folder adapts it to prom-client). `rrtype` is one of
 * RRTYPE_LABELS or 'other', so label values stay bounded.
 */
export interface DnsObserver {
  /** One lookup that went to the network (coalesced callers count once), with its wall time. */
  lookup(rrtype: string, outcome: DnsLookupOutcome, seconds: number): void;
  /** One answer served from the cache. */
  cacheHit(rrtype: string): void;
}

/** `resolve`, typed per record type; the last signature is the generic one mailauth's seam uses. */
export interface ResolveFn {
  (name: string, rrtype: 'A' | 'AAAA' | 'PTR' | 'CNAME' | 'NS'): Promise<string[]>;
  (name: string, rrtype: 'TXT' | 'SPF'): Promise<string[][]>;
  (name: string, rrtype: 'MX'): Promise<MxRecord[]>;
  (name: string, rrtype: string): Promise<DnsAnswer>;
}

export interface DnsResolver {
  /** Bound: pass `resolver.resolve` to mailauth as its `resolver` option as it is. */
  readonly resolve: ResolveFn;
  /** PTR names of an IP address, like `dns.promises.reverse`. */
  readonly reverse: (ip: string) => Promise<string[]>;
  /** The same with a node-style callback, for smtp-server's `resolver: { reverse }` option. */
  readonly reverseCallback: (ip: string, cb: (err: Error | null, names?: string[]) => void) => void;
  /** Cancels lookups in flight (ECANCELLED), empties the cache; later lookups fail with ECANCELLED. */
  readonly close: () => void;
}

export interface ResolverOptions {
  /** Recursive servers; empty → the nameservers of /etc/resolv.conf (else node's dns.getServers()). */
  readonly servers: ReadonlyArray<DnsServer>;
  /** Per attempt, UDP and the TCP retry each (default 2000). */
  readonly timeoutMs?: number;
  /** Tries per lookup, rotating over `servers` (default 2). */
  readonly attempts?: number;
  /** Cached questions at most; 0 disables the cache (default 10000). */
  readonly cacheSize?: number;
  /** Cap on the TTL of a cached answer (default 3600). */
  readonly maxTtlSeconds?: number;
  /** Cap on the TTL of a cached NXDOMAIN/NODATA (default 300). */
  readonly maxNegativeTtlSeconds?: number;
  readonly clock?: Clock;
  readonly observer?: DnsObserver;
}
