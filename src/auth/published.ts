/**
 * The applied DMARC record as aggregate and failure reports need it (RFC 9990 §2.1
 * policy_published, RFC 9989 §4.7 tags). mailauth keeps the parsed record on its DMARC
 * response as a hidden property (`record`, set for BIMI); the validated p/sp/np are on the
 * response itself.
 */
import { normaliseDomain } from '../core/domain.ts';
import type { DmarcPublished } from '../core/facts.ts';
import { toDmarcPolicy } from './normalise.ts';

interface ResponseLike {
  readonly policyDomain?: unknown;
  readonly p?: unknown;
  readonly testMode?: unknown;
}

/** `{ published }` when a record applied, else `{}` (spread into DmarcFacts). */
export function publishedOf(response: ResponseLike): { published?: DmarcPublished } {
  const record = (response as { record?: Record<string, unknown> }).record;
  const p = toDmarcPolicy(response.p);
  const domain = typeof response.policyDomain === 'string' ? normaliseDomain(response.policyDomain) : '';
  if (!record || !p || !domain) return {};
  const mode = (v: unknown): 'r' | 's' => (v === 's' ? 's' : 'r'); // RFC 9989 §4.7: default relaxed
  const uris = (v: unknown): string[] => (typeof v === 'string' ? v.split(',').map((u) => u.trim()).filter(Boolean) : []);
  return {
    published: {
      domain,
      p,
      // a record with an invalid p acts as p=none (RFC 9989 §4.10.1): its sp/np did not apply
      sp: record.p === p ? toDmarcPolicy(record.sp) : null,
      np: record.p === p ? toDmarcPolicy(record.np) : null,
      adkim: mode(record.adkim),
      aspf: mode(record.aspf),
      testing: record.t === 'y' || response.testMode === true,
      psd: record.psd === 'y' || record.psd === 'n' ? record.psd : 'u',
      fo: typeof record.fo === 'string' && record.fo ? record.fo : null,
      discovery: 'treewalk',
      rua: uris(record.rua),
      ruf: uris(record.ruf),
    },
  };
}
