/** Per-connection and per-transaction state the stages share. Owned by the SMTP adapter. */
import type { Logger } from 'pino';
import type { Tier } from '../core/facts.ts';
import type { SpfOutcome } from '../auth/spf.ts';
import type { BackendTransaction, SmtpResponse } from '../relay/backend.ts';
import type { Reservation, TierInfo } from '../reputation/types.ts';

export type Params = Record<string, string | true>;
export type { SpfOutcome };

/** The backend side of a transaction and its replies: the relay's own types (src/relay). */
export type BackendTx = Pick<BackendTransaction, 'mail' | 'rcpt' | 'data' | 'release' | 'abort'>;
export type BackendReply = Pick<SmtpResponse, 'code' | 'enhanced' | 'text'>;

export interface Transaction {
  /** smtp-server's transaction counter within the connection. */
  readonly seq: number;
  readonly startedAt: number;
  readonly sender: string;
  readonly senderDomain: string;
  readonly mailParams: Params;
  readonly spf: SpfOutcome;
  readonly recipients: Array<{ readonly address: string; readonly params: Params }>;
  /** Opened at the first recipient we accept; MAIL FROM already mirrored when set. */
  backend: BackendTx | null;
  /** The backend failed during this transaction: the rest of it gets 451 4.4.1. */
  backendLost: boolean;
  /** What the sender did wrong in this transaction, learnt once at its end. */
  readonly refused: { backend: number; protocol: number };
  /**
   * Rate-limit tokens by what they paid for (endings.ts says which stay spent):
   * `message` (MAIL's message buckets, DATA's domain bucket) stay spent only for a final
   * outcome (delivered or refused for good); `recipients` paid for an RCPT the backend was
   * asked about: work done, they stay spent whatever follows.
   */
  readonly reservations: { readonly message: Reservation[]; readonly recipients: Reservation[] };
  /** Message bytes of this transaction counted against the in-flight budget (for the client at `ip`), given back at its end. */
  heldBytes: number;
  /** DATA is being received or processed: only the DATA stage may end the transaction now. */
  inData: boolean;
  /** Set by endTransaction: a transaction ends exactly once. */
  ended: boolean;
}

export interface SessionState {
  readonly id: string;
  /** Client address; XCLIENT from a trusted peer may change it, so it is refreshed at each command. */
  ip: string;
  readonly connectedAt: number;
  readonly log: Logger;
  ptr: string | null;
  helo: string;
  /** EHLO (true) or HELO (false). */
  esmtp: boolean;
  tls: boolean;
  tlsInfo: { readonly version?: string | null; readonly cipher?: string | null } | null;
  tier: Tier;
  /** The tier and the scores it came from, for the client in `ip` (looked up again after XCLIENT). */
  tierInfo: TierInfo | null;
  tx: Transaction | null;
  /** Transactions finished on this connection (for the log). */
  messages: number;
  /** The client connection is gone. */
  closed: boolean;
  /** Why we closed the connection ourselves, when we did (the ending of a transaction cut short). */
  closedBy: 'shutdown' | 'data-timeout' | null;
}
