/**
 * What the checks found, normalised into closed unions at the boundary (auth/normalise.ts,
 * smtp/). Nothing downstream re-parses mailauth strings or raw addresses. The policy engine
 * decides on these facts alone.
 */

/** RFC 8601 result words we use, across SPF, DKIM, ARC and DMARC. */
export const AUTH_RESULTS = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy'] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

/** Reputation tiers (issue 3 computes them; until then every client is 'neutral'). */
export const TIERS = ['trusted', 'good', 'neutral', 'suspect', 'bad'] as const;
export type Tier = (typeof TIERS)[number];

export const DMARC_POLICIES = ['none', 'quarantine', 'reject'] as const;
export type DmarcPolicy = (typeof DMARC_POLICIES)[number];

export interface ClientFacts {
  /** Normalised textual IP (no ::ffff: prefix), after a trusted PROXY header or XCLIENT. */
  readonly ip: string;
  /** Reverse DNS name of ip, or null when there is none. */
  readonly ptr: string | null;
  /** HELO/EHLO argument as given; '' before HELO. */
  readonly helo: string;
  readonly tls: boolean;
  readonly tier: Tier;
}

export interface EnvelopeFacts {
  /** MAIL FROM address; '' for the null reverse-path <>. */
  readonly sender: string;
  /** Lower-case domain of sender; '' for the null reverse-path. */
  readonly senderDomain: string;
  readonly recipients: readonly string[];
}

export interface SpfFacts {
  readonly result: AuthResult;
  /** The domain checked: MAIL FROM domain, or the HELO name for a null sender (RFC 7208 §2.4). */
  readonly domain: string;
  readonly identity: 'mailfrom' | 'helo';
  /** Human-readable detail for logs, never a metric label. */
  readonly reason: string;
}

export interface DkimSignatureFacts {
  readonly result: AuthResult;
  /** d= of the signature, lower-case. */
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
  /** Aligned with the RFC5322.From domain under the DMARC record's alignment mode. */
  readonly aligned: boolean;
  readonly reason: string;
}

export interface ArcFacts {
  readonly result: AuthResult;
  readonly reason: string;
  /**
   * Signing domains (d=) of the ARC-Seals, i=1 first, the newest (the last sealer) last.
   * Only when the chain validated (result pass): a sealer of a broken chain is not authenticated.
   */
  readonly sealers?: readonly string[];
  /** Selectors (s=) of the same ARC-Seals, in the same order (RFC 8617 §7.2.2 report comments name both). */
  readonly selectors?: readonly string[];
  /**
   * The DMARC result the newest ARC-Authentication-Results reports (RFC 8617 §4.1.1: what the
   * last sealer found before it changed the message), and the header.from it was for. Only
   * when the chain validated; null when that AAR has no dmarc= result.
   */
  readonly sealerDmarc?: { readonly result: AuthResult; readonly fromDomain: string | null } | null;
}

/**
 * The DMARC Policy Record that applied, as aggregate reports describe it (RFC 9990 §2.1
 * policy_published) and with the report URIs (RFC 9989 §4.7 rua, ruf). Absent when no record applied.
 */
export interface DmarcPublished {
  /** The DMARC Policy Domain: where the applied record was found (RFC 9989 §3.2.5). */
  readonly domain: string;
  readonly p: DmarcPolicy;
  /** Only as published; null when the record has no such tag. */
  readonly sp: DmarcPolicy | null;
  readonly np: DmarcPolicy | null;
  readonly adkim: 'r' | 's';
  readonly aspf: 'r' | 's';
  /** t=y (RFC 9989 §4.7). */
  readonly testing: boolean;
  /** psd=y, psd=n, or 'u' when absent. */
  readonly psd: 'y' | 'n' | 'u';
  readonly fo: string | null;
  /** RFC 9989 §4.10 DNS Tree Walk (mailauth); RFC 7489's PSL lookup would be 'psl'. */
  readonly discovery: 'treewalk';
  /** rua= URIs as published, trimmed; empty when none. */
  readonly rua: readonly string[];
  /** ruf= URIs (failure reports, RFC 9991) as published, trimmed; empty when none. */
  readonly ruf: readonly string[];
}

export interface DmarcFacts {
  readonly result: AuthResult;
  /** The RFC5322.From domain evaluated. */
  readonly domain: string;
  /** Policy that applies to this domain (p=, or sp=/np= for a subdomain), null when no record. */
  readonly policy: DmarcPolicy | null;
  /**
   * The tag of the record that applied (at published.domain) and its published value, before
   * a t=y downgrade: p= at the author domain, sp= or np= for a subdomain (RFC 9989 §4.10.1).
   */
  readonly applied?: { readonly tag: 'p' | 'sp' | 'np'; readonly value: DmarcPolicy };
  readonly spfAligned: boolean;
  readonly dkimAligned: boolean;
  readonly reason: string;
  /** The record that applied, for aggregate reports (src/reports). */
  readonly published?: DmarcPublished;
}

export interface MessageFacts {
  /** RFC5322.From domain, lower-case; null when absent or more than one author. */
  readonly fromDomain: string | null;
  readonly messageId: string | null;
  readonly size: number;
  /** Seconds since this message (sender, recipients, Message-ID) was first offered; 0 the first time. */
  readonly firstSeenSeconds: number;
  /** From header fields (RFC 5322 §3.6: exactly one); absent when not counted. */
  readonly fromFields?: number;
  /** Author mailboxes in the From fields (more than one needs a Sender field, RFC 5322 §3.6.2); absent when not counted. */
  readonly fromAddresses?: number;
}

/** Everything known about a transaction. Fields after `spf` exist only once DATA was read. */
export interface Facts {
  readonly client: ClientFacts;
  readonly envelope: EnvelopeFacts;
  readonly spf: SpfFacts;
  readonly message?: MessageFacts;
  readonly dkim?: readonly DkimSignatureFacts[];
  readonly arc?: ArcFacts;
  readonly dmarc?: DmarcFacts;
}
