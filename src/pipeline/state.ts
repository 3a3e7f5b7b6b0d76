/** Per-connection and per-transaction state the stages share. Owned by the SMTP adapter. */
import type { Logger } from 'pino';
import type { SpfFacts, Tier } from '../core/facts.ts';
import type { BackendTransaction, SmtpResponse } from '../relay/backend.ts';
import type { Reservation, TierInfo } from '../reputation/types.ts';

export type Params = Record<string, string | true>;

export interface SpfOutcome {
  readonly facts: SpfFacts;
}

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
  /** Recipients refused in this transaction (by the backend or from the recipient cache). */
  rcptRefused: number;
  /** Rate-limit tokens taken at MAIL/RCPT, given back if the transaction dies before DATA completes. */
  readonly reservations: Reservation[];
  /** DATA was received in full: the transaction counts, its reservations stay taken. */
  completed: boolean;
}

export interface SessionState {
  readonly id: string;
  /** Client address; XCLIENT from a trusted peer may change it, so it is refreshed at MAIL. */
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
  tierInfo: TierInfo | null;
  /** Gives reservations back to the store (bound to the gateway's Reputation). */
  readonly release: (reservations: readonly Reservation[]) => void;
  tx: Transaction | null;
  /** Transactions finished on this connection (for the log). */
  messages: number;
  /** The client connection is gone. */
  closed: boolean;
}

/** Ends a transaction's backend side: RSET and back to the pool, or abort when the client is gone. */
export async function closeTransaction(state: SessionState, how: 'release' | 'abort'): Promise<void> {
  const tx = state.tx;
  state.tx = null;
  if (tx && !tx.completed && tx.reservations.length > 0) state.release(tx.reservations.splice(0));
  if (!tx?.backend) return;
  const backend = tx.backend;
  tx.backend = null;
  if (how === 'abort') {
    backend.abort();
    return;
  }
  await backend.release().catch((err: unknown) => state.log.debug({ err }, 'backend release failed'));
}
