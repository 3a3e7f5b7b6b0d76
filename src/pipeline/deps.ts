/**
 * What the stages need, as functions and narrow interfaces. app.ts binds them to the real
 * modules (auth/, message/, policy/, relay/); nothing here knows smtp-server.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { ArcFacts, DkimSignatureFacts, DmarcFacts, Facts } from '../core/facts.ts';
import type { TempReply } from '../core/reply.ts';
import type { Reputation } from '../reputation/types.ts';
import type { Decision, HeaderField } from '../core/verdict.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { BackendReply, BackendTx, SpfOutcome } from './state.ts';
import type { DomainSet } from './recipient.ts';
import type { LineEndingNormaliser } from '../message/line-endings.ts';
import type { HeaderGuard } from '../message/header-guard.ts';
import type { FingerprintInput } from '../message/fingerprint.ts';
import type { ReceivedInput } from '../message/received.ts';

export interface MessageAuth {
  readonly dkim: readonly DkimSignatureFacts[];
  readonly arc: ArcFacts;
  readonly dmarc: DmarcFacts | null;
  readonly fromDomain: string | null;
  readonly messageId: string | null;
  /** Authentication-Results header value (after "Authentication-Results: "). */
  readonly authResults: string;
  /** From fields and author mailboxes in them, as the verifier read the header. */
  readonly fromFields?: number;
  readonly fromAddresses?: number;
}

export interface ClientIdentity {
  readonly ip: string;
  readonly ptr: string | null;
  readonly helo: string;
  readonly esmtp: boolean;
}

export interface PipelineDeps {
  readonly config: Config;
  readonly domains: DomainSet;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Decides with the current rule set (swapped atomically on reload). */
  decide(facts: Facts, stage: 'mail' | 'data'): Decision | null;
  checkSpf(input: { ip: string; helo: string; sender: string }): Promise<SpfOutcome>;
  /** `withheldSignatures`: DKIM-Signature fields the header guard kept from the verifier. */
  authenticate(input: { message: Readable; ip: string; helo: string; sender: string; spf: SpfOutcome; withheldSignatures?: () => number }): Promise<MessageAuth>;
  openBackend(client: ClientIdentity): Promise<BackendTx>;
  readonly reputation: Reputation;
  /** Backend 5xx answers to RCPT by address, for a short while. */
  readonly recipientCache: { get(address: string): BackendReply | undefined; set(address: string, reply: BackendReply): void };
  /** Sends `reply` and closes the client connection now (a client too slow to finish DATA). */
  dropConnection(sessionId: string, reply: TempReply): void;
  /** Seconds since the message with this fingerprint was first offered (0 the first time). */
  firstSeen(fingerprint: string): number;
  readonly message: {
    /** Streaming line-ending normaliser: bare CR/LF → CRLF, counting repairs. */
    normaliser(): LineEndingNormaliser;
    /** The header section's limits, applied before the verifier sees it (see message/header-guard.ts). */
    headerGuard(): HeaderGuard;
    fingerprint(input: FingerprintInput): string;
    received(input: ReceivedInput): HeaderField;
    /** Removes forged A-R/ARC-A-R for our authserv-id and X-Postern-*, prepends `fields`. */
    rewrite(message: Buffer, authservId: string, fields: readonly HeaderField[]): Buffer;
  };
}
