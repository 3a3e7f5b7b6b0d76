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
}

export interface DmarcFacts {
  readonly result: AuthResult;
  /** The RFC5322.From domain evaluated. */
  readonly domain: string;
  /** Policy that applies to this domain (p=, or sp=/np= for a subdomain), null when no record. */
  readonly policy: DmarcPolicy | null;
  readonly spfAligned: boolean;
  readonly dkimAligned: boolean;
  readonly reason: string;
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
