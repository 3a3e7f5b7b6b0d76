/**
 * Whether a finished transaction calls for a failure report (RFC 9991), and of which kind:
 * the DMARC record that applied must list mailto: URIs in ruf=, and its fo= tag (RFC 9989
 * §4.7) says which failures it wants to hear about:
 *
 *   0  (default) all underlying mechanisms failed to produce an aligned pass: DMARC failed
 *   1  any mechanism failed to produce an aligned pass (also when DMARC passed on the other)
 *   d  a DKIM signature failed to verify, aligned or not (RFC 6591 Auth-Failure: signature)
 *   s  SPF failed, aligned or not (Auth-Failure: spf)
 *
 * At most one report per message: a DMARC report when 0 or 1 applies, else a DKIM one, else an
 * SPF one. Pure: no I/O, no clock.
 */
import type { DkimSignatureFacts } from '../../core/facts.ts';
import { mailtoAddresses } from '../destinations.ts';
import type { TransactionOutcome } from '../row.ts';

/** RFC 6591 §3.1 / RFC 9991 §4 Auth-Failure types we report. */
export type AuthFailure = 'dmarc' | 'signature' | 'bodyhash' | 'spf';

export interface FailureTrigger {
  readonly authFailure: AuthFailure;
  /** The DMARC Policy Domain (where the record was found): the domain the per-domain cap counts. */
  readonly policyDomain: string;
  /** ruf= mailto: addresses (at most 4, deduplicated). */
  readonly destinations: readonly string[];
  /** The signature a DKIM-Domain/-Selector field describes (RFC 9991 §4: a DKIM failure of an aligned identifier, or the fo=d one). */
  readonly signature: DkimSignatureFacts | null;
}

/** The fo= options in force: unknown values are ignored, and none left means the default "0" (RFC 9989 §4.7). */
export function foOptions(fo: string | null): ReadonlySet<'0' | '1' | 'd' | 's'> {
  const known = (fo ?? '').split(':').map((v) => v.trim().toLowerCase()).filter((v): v is '0' | '1' | 'd' | 's' => /^[01ds]$/.test(v));
  return new Set(known.length > 0 ? known : ['0']);
}

export function failureTrigger(o: TransactionOutcome): FailureTrigger | null {
  const { facts } = o;
  const dmarc = facts.dmarc;
  const published = dmarc?.published;
  // A tempfail is retried by the sender: its final attempt is the one reported.
  if (!dmarc || !published || o.action === 'tempfail') return null;
  // RFC 9991 §2: ruf= of a record with psd=y is not considered.
  if (published.psd === 'y') return null;
  // Only a final evaluation: temperror, permerror and none leave nothing to report.
  if (dmarc.result !== 'pass' && dmarc.result !== 'fail') return null;
  const destinations = mailtoAddresses(published.ruf);
  if (destinations.length === 0) return null;
  const fo = foOptions(published.fo);
  const base = { policyDomain: published.domain, destinations };
  const dkim = facts.dkim ?? [];
  if ((fo.has('0') && dmarc.result === 'fail') || (fo.has('1') && !(dmarc.dkimAligned && dmarc.spfAligned))) {
    // an aligned signature that did not verify is the DKIM failure of an aligned identifier
    return { ...base, authFailure: 'dmarc', signature: dkim.find((d) => d.aligned && d.domain && d.result !== 'pass') ?? null };
  }
  const failed = fo.has('d') ? dkim.find((d) => d.result === 'fail' && d.domain) : undefined;
  if (failed) return { ...base, authFailure: /body ?hash/i.test(failed.reason) ? 'bodyhash' : 'signature', signature: failed };
  if (fo.has('s') && facts.spf.result === 'fail') return { ...base, authFailure: 'spf', signature: null };
  return null;
}
