import { isIP } from 'node:net';
import type { DNSResolver } from 'mailauth';
import { systemClock } from '../core/clock.ts';
import { cloneAnswer, interpret, type Interpretation } from './answer.ts';
import { createAnswerCache, type CachedOutcome } from './cache.ts';
import { dnsError, syscallFor, TEMPORARY_CODES, type DnsErrorCode } from './errors.ts';
import { checkQueryName, reverseName } from './name.ts';
import { systemServers } from './servers.ts';
import type { DnsAnswer, DnsLookupOutcome, DnsResolver, DnsServer, ResolveFn, ResolverOptions } from './types.ts';
import { exchange, TransportError } from './wire.ts';

/** What the mail-authentication code asks for (mailauth's spf, dkim, arc, dmarc; smtp-server's reverse). */
export const RRTYPE_LABELS: ReadonlySet<string> = new Set(['A', 'AAAA', 'TXT', 'SPF', 'MX', 'PTR', 'CNAME', 'NS']);

const OUTCOME_LABELS: Partial<Record<DnsErrorCode, DnsLookupOutcome>> = {
  ENOTFOUND: 'nxdomain', ENODATA: 'nodata', ESERVFAIL: 'servfail', EREFUSED: 'refused', ETIMEOUT: 'timeout',
  // a socket error talking to the server: ICMP port/host unreachable on UDP, connection refused on TCP
  ECONNREFUSED: 'unreachable',
};

/** Result of one network lookup: capped TTL (0 = do not cache). */
type Lookup =
  | { readonly ok: true; readonly answer: DnsAnswer; readonly ttl: number }
  | { readonly ok: false; readonly code: DnsErrorCode; readonly ttl: number; readonly detail?: string };

const DEFAULTS = { timeoutMs: 2000, attempts: 2, cacheSize: 10_000, maxTtlSeconds: 3600, maxNegativeTtlSeconds: 300 };

function checkServer(server: DnsServer): DnsServer {
  if (isIP(server.host) === 0) throw new TypeError(`DNS server host "${server.host}" is not an IP address`);
  if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) {
    throw new TypeError(`DNS server port ${server.port} is out of range`);
  }
  return { host: server.host, port: server.port };
}

/** How a question goes out: servers in turn, time and tries allowed, TTL caps, the observer. */
interface Upstream {
  readonly servers: readonly DnsServer[];
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly maxTtl: number;
  readonly maxNegativeTtl: number;
  readonly observer: ResolverOptions['observer'];
  /** Aborted by close(): queries in flight end as ECANCELLED. */
  readonly signal: AbortSignal;
}

/** A caching stub resolver over UDP/TCP to recursive servers, with the error shapes of `dns.promises`. */
export function createResolver(options: ResolverOptions): DnsResolver {
  const closing = new AbortController();
  const upstream: Upstream = {
    servers: (options.servers.length > 0 ? options.servers : systemServers()).map(checkServer),
    timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
    attempts: Math.max(1, options.attempts ?? DEFAULTS.attempts),
    maxTtl: options.maxTtlSeconds ?? DEFAULTS.maxTtlSeconds,
    maxNegativeTtl: options.maxNegativeTtlSeconds ?? DEFAULTS.maxNegativeTtlSeconds,
    observer: options.observer,
    signal: closing.signal,
  };
  const cache = createAnswerCache({ maxEntries: options.cacheSize ?? DEFAULTS.cacheSize, clock: options.clock ?? systemClock });
  const inFlight = new Map<string, Promise<Lookup>>();

  function resolveAny(name: string, rrtype: string): Promise<DnsAnswer> {
    const type = String(rrtype).toUpperCase();
    if (!RRTYPE_LABELS.has(type)) {
      return Promise.reject(Object.assign(new TypeError(`unsupported rrtype "${rrtype}"`), { code: 'ERR_INVALID_ARG_VALUE' }));
    }
    if (closing.signal.aborted) return Promise.reject(dnsError('ECANCELLED', syscallFor(type), name));
    const checked = checkQueryName(String(name));
    // mailauth reads EBADNAME as "not a domain name": SPF none/permerror, DMARC no record (never temperror)
    if (!checked.ok) return Promise.reject(dnsError('EBADNAME', syscallFor(type), name, checked.reason));

    const key = `${type} ${checked.name.toLowerCase()}`;
    const cached = cache.get(key);
    if (cached !== undefined) {
      upstream.observer?.cacheHit(rrtypeLabel(type));
      return settle(cached, type, name);
    }
    let pending = inFlight.get(key);
    if (pending === undefined) {
      // identical questions asked meanwhile share this one query
      pending = lookup(upstream, checked.name, type)
        .then((result) => {
          if (!closing.signal.aborted) {
            cache.set(key, result.ok ? { ok: true, answer: result.answer } : { ok: false, code: result.code }, result.ttl);
          }
          return result;
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    return pending.then((result) => settle(result, type, name));
  }

  const resolve = resolveAny as ResolveFn;

  function reverse(ip: string): Promise<string[]> {
    const arpa = reverseName(String(ip));
    if (arpa === null) return Promise.reject(dnsError('EINVAL', 'getHostByAddr', String(ip)));
    return resolve(arpa, 'PTR');
  }

  function close(): void {
    closing.abort();
    cache.clear();
  }

  return { resolve, reverse, reverseCallback: callbackStyle(reverse), close };
}

/** Caps TTLs; temporary errors get 0 so they are never cached. */
function capped(result: Interpretation, upstream: Upstream): Lookup {
  if (result.ok) return { ok: true, answer: result.answer, ttl: Math.min(result.ttl, upstream.maxTtl) };
  const negative = result.code === 'ENOTFOUND' || result.code === 'ENODATA';
  const ttl = negative && result.ttl !== null ? Math.min(result.ttl, upstream.maxNegativeTtl) : 0;
  return { ok: false, code: result.code, ttl, ...(result.detail !== undefined ? { detail: result.detail } : {}) };
}

/** Up to `attempts` tries, rotating over the servers; only temporary failures move to the next try. */
async function lookup(upstream: Upstream, name: string, type: string): Promise<Lookup> {
  const { servers, timeoutMs, signal } = upstream;
  const started = performance.now();
  let result: Lookup = { ok: false, code: 'ETIMEOUT', ttl: 0 };
  for (let attempt = 0; attempt < upstream.attempts; attempt++) {
    const server = servers[attempt % servers.length] as DnsServer;
    try {
      result = capped(interpret(await exchange(server, { name, type }, { timeoutMs, signal }), name, type), upstream);
    } catch (err) {
      const code = err instanceof TransportError ? err.code : 'EBADRESP';
      result = { ok: false, code, ttl: 0, detail: err instanceof Error ? err.message : String(err) };
    }
    if (result.ok || !TEMPORARY_CODES.has(result.code)) break;
  }
  if (result.ok || result.code !== 'ECANCELLED') {
    const outcome = result.ok ? 'ok' : OUTCOME_LABELS[result.code] ?? 'error';
    upstream.observer?.lookup(rrtypeLabel(type), outcome, (performance.now() - started) / 1000);
  }
  return result;
}

/** A copy of the answer (callers may change theirs), or the error `dns.promises` would throw. */
function settle(outcome: CachedOutcome | Lookup, type: string, name: string): Promise<DnsAnswer> {
  if (outcome.ok) return Promise.resolve(cloneAnswer(outcome.answer));
  const detail = 'detail' in outcome ? outcome.detail : undefined;
  return Promise.reject(dnsError(outcome.code, syscallFor(type), name, detail));
}

/** smtp-server's `resolver.reverse(ip, callback)` over the promise. */
function callbackStyle(reverse: (ip: string) => Promise<string[]>): DnsResolver['reverseCallback'] {
  return (ip, cb) => {
    // the callback runs outside the promise chain, so an exception in it is not swallowed
    reverse(ip).then(
      (names) => process.nextTick(cb, null, names),
      (err: unknown) => process.nextTick(cb, err instanceof Error ? err : new Error(String(err))),
    );
  };
}

/**
 * `resolver.resolve` typed as mailauth's seam. mailauth's d.ts declares `string[] | string[][]`
 * only, though its SPF code reads the `{ exchange, priority }` objects of MX answers from it.
 */
export function mailauthResolver(resolver: DnsResolver): DNSResolver {
  return resolver.resolve as DNSResolver;
}

function rrtypeLabel(type: string): string {
  return RRTYPE_LABELS.has(type) ? type : 'other';
}
