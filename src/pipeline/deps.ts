/**
 * What the stages need, as functions and narrow interfaces: no Config, no smtp-server. The
 * composition root (src/gateway/pipeline-deps.ts) binds them to the real modules, and builds
 * them anew on reload. Each stage takes the subset it uses (MailDeps, RcptDeps, DataDeps).
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import type { ArcFacts, DkimSignatureFacts, DmarcFacts, Facts } from '../core/facts.ts';
import type { Decision, HeaderField } from '../core/verdict.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Reputation, Reservation } from '../reputation/types.ts';
import type { LineEndingNormaliser } from '../message/line-endings.ts';
import type { HeaderGuard } from '../message/header-guard.ts';
import type { FingerprintInput } from '../message/fingerprint.ts';
import type { ReceivedInput } from '../message/received.ts';
import type { ClientIdentity } from '../relay/backend.ts';
import type { Collector } from '../reports/collector.ts';
import type { FailureReporter } from '../reports/failure/reporter.ts';
import type { DecisionRecord } from '../observability/decision-record.ts';
import type { ByteBudget } from './byte-budget.ts';
import type { DomainSet } from './recipient.ts';
import type { BackendReply, BackendTx, SpfOutcome } from './state.ts';

export type { ClientIdentity };

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

/** What the header guard kept from the verifier, read once the header section ended. */
export interface WithheldSignatures {
  /** DKIM-Signature fields over auth.maxDkimSignatures. */
  count(): number;
  /** DKIM-Signature and ARC-Message-Signature fields whose h= is over auth.maxDkimHeaderNames. */
  oversigned(): number;
}

/** The settings the stages read, copied out of the configuration. */
export interface StageSettings {
  /** Our host name: banner, Received by, authserv-id. */
  readonly hostname: string;
  readonly maxRecipients: number;
  readonly maxMessageSize: number;
  readonly maxHeaderBytes: number;
  readonly bareLineEndings: 'repair' | 'reject';
  readonly dataTimeoutMs: number;
  readonly maxRcptErrorsPerTransaction: number;
  /** How long a message's first-seen time is remembered (first_seen_within). */
  readonly firstSeenTtlMs: number;
  /** Pause before the greeting (early-talker detection); 0 greets at once. */
  readonly greetingDelayMs: number;
}

/** Backend refusals of recipients that hold for every sender, remembered briefly. */
export interface RecipientCache {
  get(address: string): BackendReply | undefined;
  set(address: string, reply: BackendReply): void;
}

export interface PipelineDeps {
  readonly settings: StageSettings;
  readonly domains: DomainSet;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly reputation: Reputation;
  /** Decides with the current rule set (swapped atomically on reload). */
  decide(facts: Facts, stage: 'mail' | 'data'): Decision | null;
  checkSpf(input: { ip: string; helo: string; sender: string }): Promise<SpfOutcome>;
  /** `withheld`: signature fields the header guard kept from the verifier (over the count cap; h= over its cap). */
  authenticate(input: { message: Readable; ip: string; helo: string; sender: string; spf: SpfOutcome; withheld?: WithheldSignatures }): Promise<MessageAuth>;
  openBackend(client: ClientIdentity): Promise<BackendTx>;
  readonly recipientCache: RecipientCache;
  readonly budget: ByteBudget;
  /** DMARC aggregate report collection (reports.dmarc.enabled); fire-and-forget, never throws. */
  readonly reports?: Collector;
  /** DMARC failure reports (reports.dmarc.failure.enabled); never throws, never waits. */
  readonly failureReports?: FailureReporter;
  /** decisions.file, when configured: takes each decision record without blocking. */
  readonly decisionFile?: { write(session: string, record: DecisionRecord): void };
  /** Writes `reply` on the client connection past smtp-server, counted as the answer to DATA, and closes it (a client too slow to finish DATA). */
  dropConnection(sessionId: string, reply: import('../core/reply.ts').TempReply): void;
  /** Milliseconds since the message with this fingerprint was first offered, on any node (0 the first time). */
  firstSeen(fingerprint: string): Promise<number>;
  /** Gives reservations back to the store; never rejects. */
  release(reservations: readonly Reservation[]): void;
  readonly message: {
    /** Streaming line-ending normaliser: bare CR/LF → CRLF, counting repairs. */
    normaliser(): LineEndingNormaliser;
    /** The header section's limits, applied before the verifier sees it (see message/header-guard.ts). */
    headerGuard(): HeaderGuard;
    fingerprint(input: FingerprintInput): string;
    received(input: ReceivedInput): HeaderField;
    /** Removes forged A-R/ARC-A-R for our authserv-id and X-Postern-*, prepends `fields`. */
    rewrite(message: readonly Buffer[], authservId: string, fields: readonly HeaderField[]): readonly Buffer[];
  };
}

/** What ending a transaction needs (src/pipeline/end.ts). */
export type EndDeps = Pick<PipelineDeps, 'clock' | 'metrics' | 'reputation' | 'release' | 'budget' | 'reports' | 'failureReports' | 'decisionFile'>;
export type MailDeps = EndDeps & Pick<PipelineDeps, 'decide' | 'checkSpf'>;
export type RcptDeps = EndDeps & Pick<PipelineDeps, 'settings' | 'domains' | 'openBackend' | 'recipientCache'>;
export type DataDeps = EndDeps & Pick<PipelineDeps, 'settings' | 'decide' | 'authenticate' | 'openBackend' | 'dropConnection' | 'firstSeen' | 'message'>;
