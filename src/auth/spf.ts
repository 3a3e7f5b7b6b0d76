import { isIP } from 'node:net';
import { spf, type DNSResolver, type SPFResult } from 'mailauth';
import type { SpfFacts } from '../core/facts.ts';
import { domainOf, normaliseDomain } from '../core/domain.ts';
import { Deadline, deadlineResolver } from './deadline.ts';
import { reasonOf, toAuthResult } from './normalise.ts';

/**
 * SPF at MAIL FROM time (DESIGN "The mail path"; STYLE §2.6: mailauth's authenticate() would
 * only run it after DATA). The outcome is kept on the session and handed to
 * authenticateMessage() for DMARC.
 */

export interface SpfInput {
  readonly ip: string;
  readonly helo: string;
  /** MAIL FROM address; '' for the null reverse-path <>. */
  readonly sender: string;
  /** Our host name: authserv-id and the name in mailauth's comments. */
  readonly hostname: string;
  readonly resolver: DNSResolver;
  readonly strict: boolean;
  /** RFC 7208 §4.6.4: an overall time limit, temperror when exceeded. */
  readonly timeoutMs?: number;
}

export interface SpfOutcome {
  readonly facts: SpfFacts;
  /** The resinfo for Authentication-Results, e.g. "spf=pass (...) smtp.mailfrom=example.com". */
  readonly header: string;
  /** The Received-SPF field (RFC 7208 §9.1), name included, or null when SPF was not evaluated. */
  readonly receivedSpf: string | null;
  /** mailauth's result, null when it threw. DMARC needs its domain and status. */
  readonly raw: SPFResult | null;
  /** The evaluation ran out of time (timeoutMs): the result is temperror for that reason. */
  readonly deadlinePassed?: boolean;
}

/**
 * The HELO name as check_host() should see it. An IP literal HELO is written in brackets,
 * as mailauth's authenticate() does, so that it is not evaluated as a domain; an empty HELO
 * falls back to the client IP the same way.
 */
export function spfHelo(helo: string, ip: string): string {
  const name = helo.trim() || ip;
  return isIP(name) ? `[${name}]` : name;
}

/** Never rejects: any exception becomes a temperror outcome (STYLE §4.3: fail to 4xx). */
export async function checkSpf(input: SpfInput): Promise<SpfOutcome> {
  const helo = spfHelo(input.helo, input.ip);
  // RFC 7208 §2.4: with a null reverse-path the HELO identity is checked (postmaster@helo)
  const identity: SpfFacts['identity'] = input.sender ? 'mailfrom' : 'helo';
  // RFC 7208 §4.6.4: mailauth checks maxElapsedTime between lookups; the deadline resolver
  // also ends a lookup in flight at that time, so the whole evaluation is bounded.
  const timeoutMs = input.timeoutMs ?? 0;
  const timed = timeoutMs > 0;
  const deadline = new Deadline();
  if (timed) deadline.start(timeoutMs);
  try {
    const raw = await spf({
      ip: input.ip,
      helo,
      sender: input.sender,
      mta: input.hostname,
      resolver: timed ? deadlineResolver(input.resolver, deadline) : input.resolver,
      strict: input.strict,
      ...(timed ? { maxElapsedTime: timeoutMs } : {}),
    });
    const result = toAuthResult(raw.status.result);
    const deadlinePassed = deadline.hasPassed && result === 'temperror';
    const reason = reasonOf(raw.status);
    const facts: SpfFacts = {
      result,
      domain: normaliseDomain(raw.domain),
      identity,
      reason: deadlinePassed ? `${reason ? `${reason}; ` : ''}SPF deadline of ${timeoutMs} ms passed` : reason,
    };
    return { facts, header: raw.info, receivedSpf: raw.header, raw, ...(deadlinePassed ? { deadlinePassed } : {}) };
  } catch (err) {
    const domain = identity === 'helo' ? normaliseDomain(helo) : domainOf(input.sender);
    const reason = `spf evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
    const property = identity === 'helo' ? 'smtp.helo' : 'smtp.mailfrom';
    // the domain is client-chosen text: written only when it is a plain domain-name pvalue
    const prop = /^[a-z0-9._:[\]-]+$/.test(domain) ? ` ${property}=${domain}` : '';
    return {
      facts: { result: 'temperror', domain, identity, reason },
      header: `spf=temperror (spf evaluation failed)${prop}`,
      receivedSpf: null,
      raw: null,
      ...(deadline.hasPassed ? { deadlinePassed: true } : {}),
    };
  } finally {
    deadline.cancel();
  }
}
