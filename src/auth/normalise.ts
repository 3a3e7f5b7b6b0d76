import { AUTH_RESULTS, DMARC_POLICIES, type AuthResult, type DmarcPolicy } from '../core/facts.ts';

/**
 * The boundary between mailauth's strings and our closed unions (STYLE §2.7, §4.4). Nothing
 * downstream of this file looks at a mailauth result string.
 */

const KNOWN = new Set<string>(AUTH_RESULTS);

/** Spellings mailauth (or a parsed foreign header) uses for a word we already have. */
const ALIASES: Readonly<Record<string, AuthResult>> = {
  // lib/bimi/index.js still documents 'temperr' in AuthStatus (STYLE §2.7)
  temperr: 'temperror',
  // RFC 7208 §8.4 calls "fail" a hard fail; some tools print the word
  hardfail: 'fail',
  // RFC 8601 §2.7.1 'policy' is what we report for a weak key or algorithm; 'skipped' and
  // 'declined' only come from BIMI, which we do not run: nothing was evaluated
  skipped: 'none',
  declined: 'none',
};

/**
 * Maps any mailauth result string into AuthResult.
 *
 * An unknown word becomes 'permerror', not 'none': 'none' tells the policy "the domain
 * publishes nothing", which a DMARC rule may treat as harmless, while an unknown word means we
 * could not interpret the evaluation. 'permerror' keeps that visible and lets the policy
 * refuse or tag instead of silently passing it (fail closed, STYLE §4.3).
 */
export function toAuthResult(value: unknown): AuthResult {
  if (typeof value !== 'string') return 'permerror';
  const word = value.trim().toLowerCase();
  if (KNOWN.has(word)) return word as AuthResult;
  return ALIASES[word] ?? 'permerror';
}

const POLICIES = new Set<string>(DMARC_POLICIES);

/** A DMARC policy word, or null when absent or not one of none/quarantine/reject. */
export function toDmarcPolicy(value: unknown): DmarcPolicy | null {
  if (typeof value !== 'string') return null;
  const word = value.trim().toLowerCase();
  return POLICIES.has(word) ? (word as DmarcPolicy) : null;
}

/** The parts of a mailauth status we build a reason from. */
export interface StatusLike {
  readonly result?: unknown;
  readonly comment?: unknown;
  readonly policy?: unknown;
}

/**
 * A human-readable reason for logs: mailauth's comment plus any policy properties
 * (e.g. "dkim-rules=weak-key"). Never a metric label.
 */
export function reasonOf(status: StatusLike | null | undefined, extra?: string | null): string {
  const parts: string[] = [];
  if (typeof status?.comment === 'string' && status.comment) parts.push(status.comment);
  const policy = status?.policy;
  if (policy && typeof policy === 'object') {
    for (const [key, value] of Object.entries(policy as Record<string, unknown>)) {
      if (typeof value === 'string' && value) parts.push(`${key}=${value}`);
    }
  }
  if (extra) parts.push(extra);
  return parts.join('; ');
}
