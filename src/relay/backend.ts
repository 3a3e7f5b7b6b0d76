/**
 * The relay towards the backend mail store, as the pipeline uses it: one BackendTransaction per
 * inbound transaction, mirroring MAIL, each RCPT and DATA, over a pooled connection
 * (transaction.ts).
 *
 * Reuse rules (DESIGN.md "Facts about Postfix as the backend"):
 * - a connection goes back to the pool only if it is healthy (no BackendError, no 421), has
 *   carried fewer than maxMessagesPerConnection transactions and has collected fewer than
 *   maxRcptErrorsPerConnection refused RCPTs since its last delivered message (Postfix delays
 *   replies from its 10th error and hangs up at the 20th; a delivery resets its count);
 * - RSET only after an abandoned transaction: a final DATA reply already ended it;
 * - with XCLIENT the connection speaks for one client: QUIT on release, never pooled.
 */
import { systemClock, type Clock } from '../core/clock.ts';
import { BackendError } from './backend-error.ts';
import type { Capabilities, SmtpParams } from './extensions.ts';
import { IdlePool } from './pool.ts';
import { sharedProbe, type ProbeResult } from './probe.ts';
import { formatResponse, type SmtpResponse } from './reply.ts';
import { connectSmtp, type SmtpClient, type SmtpClientOptions } from './smtp-client.ts';
import { RelayTransaction, type Connection, type TransactionHost } from './transaction.ts';

export { BackendError, type BackendErrorKind } from './backend-error.ts';
export type { Capabilities, SmtpParams } from './extensions.ts';
export { formatResponse, type SmtpResponse } from './reply.ts';

export interface BackendOptions extends SmtpClientOptions {
  /** Pass the client's identity with XCLIENT when the backend offers it. */
  readonly xclient: boolean;
  /** Most idle connections kept; 0 disables reuse. */
  readonly poolSize: number;
  /** Idle connections are dropped after this; must stay under Postfix's 300 s. */
  readonly idleTimeoutMs: number;
  readonly maxMessagesPerConnection: number;
  readonly maxRcptErrorsPerConnection: number;
  /** A probe's answer is reused for this long (default 5000 ms; see probe.ts). */
  readonly probeIntervalMs?: number;
}

export interface ClientIdentity {
  readonly ip: string;
  readonly ptr: string | null;
  readonly helo: string;
  readonly esmtp: boolean;
}

export type RelayOutcome = 'delivered' | 'tempfail' | 'rejected' | 'error';

/** Metrics seam (observability wires prom-client to it). */
export interface RelayObserver {
  /** Time from DATA to the backend's final reply. */
  relayLatency(seconds: number, outcome: RelayOutcome): void;
  /** Every BackendError, by kind. */
  relayError(kind: string): void;
}

export interface BackendDeps {
  readonly clock?: Clock;
  readonly observer?: RelayObserver;
}

export interface BackendTransaction {
  /** What the backend advertised (its SIZE limit, …). */
  readonly capabilities: Capabilities;
  mail(sender: string, params: SmtpParams): Promise<SmtpResponse>;
  rcpt(address: string, params: SmtpParams): Promise<SmtpResponse>;
  /** The message as one buffer or in pieces (header fields, body…) that are sent as they are, never joined. */
  data(message: Buffer | readonly Buffer[]): Promise<SmtpResponse>;
  /** The transaction is over (delivered or abandoned): RSET if needed, pool or QUIT. Never rejects. */
  release(): Promise<void>;
  /** Destroys the connection now (the client vanished mid-transaction). */
  abort(): void;
}

export interface Backend {
  /** A pooled or fresh connection; rejects with BackendError (the pipeline answers 451 4.4.1). */
  open(client: ClientIdentity): Promise<BackendTransaction>;
  /** For /readyz: connect, EHLO, QUIT on a connection of its own, at most once per probeIntervalMs, shared by concurrent callers. */
  probe(): Promise<ProbeResult>;
  /** QUITs idle connections; open() rejects afterwards, busy ones QUIT on release. */
  close(): Promise<void>;
  stats(): { idle: number; busy: number };
}

export function createBackend(options: BackendOptions, deps: BackendDeps = {}): Backend {
  return new RelayBackend(options, deps.clock ?? systemClock, deps.observer);
}

class RelayBackend implements Backend {
  readonly #options: BackendOptions;
  readonly #pool: IdlePool<Connection>;
  /** What the transactions opened here call back into. */
  readonly #host: TransactionHost;
  #closed = false;
  #busy = 0;
  readonly probe: () => Promise<ProbeResult>;

  constructor(options: BackendOptions, clock: Clock, observer: RelayObserver | undefined) {
    this.#options = options;
    this.#pool = new IdlePool<Connection>({
      maxIdle: options.poolSize,
      idleTimeoutMs: options.idleTimeoutMs,
      clock,
      discard: (conn) => void quitQuietly(conn.client),
    });
    this.#host = {
      clock,
      observer,
      reportError: (err) => {
        if (err instanceof BackendError) observer?.relayError(err.kind);
      },
      connect: (identity) => this.#connect(identity),
      ended: () => { this.#busy--; },
      recycle: (conn) => this.#recycle(conn),
    };
    this.probe = sharedProbe(async () => {
      const client = await connectSmtp(options);
      await client.quit();
      return { ok: true };
    }, clock, options.probeIntervalMs ?? 5_000);
  }

  async open(identity: ClientIdentity): Promise<BackendTransaction> {
    if (this.#closed) throw new BackendError('closed', 'backend relay is shut down');
    const pooled = this.#options.xclient ? undefined : this.#pool.take((conn) => conn.client.usable);
    const conn = pooled ?? await this.#connect(identity);
    if (this.#closed) { // close() ran while we were connecting
      void quitQuietly(conn.client);
      throw new BackendError('closed', 'backend relay is shut down');
    }
    conn.transactions++;
    this.#busy++;
    return new RelayTransaction(this.#host, conn, identity);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#pool.drain().map((conn) => quitQuietly(conn.client)));
  }

  stats(): { idle: number; busy: number } {
    return { idle: this.#pool.size, busy: this.#busy };
  }

  async #connect(identity: ClientIdentity): Promise<Connection> {
    let client: SmtpClient;
    try {
      client = await connectSmtp(this.#options);
    } catch (err) {
      this.#host.reportError(err);
      throw err;
    }
    const bound = this.#options.xclient && client.capabilities.xclient !== null;
    if (bound) await this.#sendXclient(client, identity);
    const conn: Connection = { client, bound, transactions: 0, rcptErrors: 0, reused: false };
    client.onClose(() => this.#pool.remove(conn));
    return conn;
  }

  async #sendXclient(client: SmtpClient, identity: ClientIdentity): Promise<void> {
    try {
      const reply = await client.xclient({
        addr: identity.ip, name: identity.ptr, helo: identity.helo, proto: identity.esmtp ? 'ESMTP' : 'SMTP',
      });
      // Going on without it would make the backend judge Postern instead of the client.
      if (reply.code !== 220) throw new BackendError('protocol', `backend refused XCLIENT: ${formatResponse(reply)}`);
    } catch (err) {
      client.destroy();
      this.#host.reportError(err);
      throw err;
    }
  }

  async #recycle(conn: Connection): Promise<void> {
    const { client } = conn;
    const options = this.#options;
    if (!client.usable) return;
    const worn = conn.transactions >= options.maxMessagesPerConnection
      || conn.rcptErrors >= options.maxRcptErrorsPerConnection;
    if (this.#closed || conn.bound || worn || options.poolSize === 0) return quitQuietly(client);
    if (client.inTransaction) {
      try {
        const reply = await client.rset();
        if (reply.code !== 250) return quitQuietly(client);
      } catch {
        return; // the connection destroyed itself
      }
    }
    if (this.#closed || !client.usable) return quitQuietly(client);
    conn.reused = true;
    if (!this.#pool.put(conn)) await quitQuietly(client);
  }
}

/** QUIT politely; whatever happens the connection ends destroyed. */
async function quitQuietly(client: SmtpClient): Promise<void> {
  if (!client.usable) return;
  try {
    await client.quit();
  } catch {
    client.destroy();
  }
}
