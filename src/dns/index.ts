export { createResolver, mailauthResolver, RRTYPE_LABELS } from './resolver.ts';
export { parseServer, systemServers } from './servers.ts';
export type { DnsErrorCode, DnsError } from './errors.ts';
export type {
  DnsAnswer, DnsLookupOutcome, DnsObserver, DnsResolver, DnsServer, MxRecord, ResolveFn, ResolverOptions,
} from './types.ts';
