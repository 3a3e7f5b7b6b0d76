/**
 * One inbound transaction mirrored on a backend connection (backend.ts opens it): MAIL, each
 * RCPT and DATA, counted for the connection's reuse rules, then released to the pool or
 * aborted.
 */
import type { Clock } from '../core/clock.ts';
import { BackendError } from './backend-error.ts';
import type { BackendTransaction, ClientIdentity, RelayObserver, RelayOutcome } from './backend.ts';
import type { Capabilities, SmtpParams } from './extensions.ts';
import type { SmtpResponse } from './reply.ts';
import type { SmtpClient } from './smtp-client.ts';

export interface Connection {
  readonly client: SmtpClient;
  /** Bound to one client by XCLIENT: never reused. */
  readonly bound: boolean;
  transactions: number;
  rcptErrors: number;
  /** Taken from the pool: the backend may have closed it meanwhile. */
  reused: boolean;
}

/** What a transaction needs of the backend that opened it. */
export interface TransactionHost {
  readonly clock: Clock;
  readonly observer: RelayObserver | undefined;
  /** Counts a BackendError. */
  reportError(err: unknown): void;
  /** A fresh connection for the same client (one that replaces a stale pooled one). */
  connect(identity: ClientIdentity): Promise<Connection>;
  /** The transaction is over: it no longer counts as busy. */
  ended(): void;
  /** RSET if needed, then back to the pool or QUIT. */
  recycle(conn: Connection): Promise<void>;
}

export class RelayTransaction implements BackendTransaction {
  readonly #host: TransactionHost;
  readonly #identity: ClientIdentity;
  #conn: Connection;
  #open = true;
  #commands = 0;

  constructor(host: TransactionHost, conn: Connection, identity: ClientIdentity) {
    this.#host = host;
    this.#conn = conn;
    this.#identity = identity;
  }

  get capabilities(): Capabilities {
    return this.#conn.client.capabilities;
  }

  async mail(sender: string, params: SmtpParams): Promise<SmtpResponse> {
    this.#guard();
    if (this.#commands > 0 || !this.#conn.reused) return this.#run((client) => client.mail(sender, params));
    // A pooled connection the backend closed while idle races our MAIL: it either fails
    // as closed or is answered with the backend's idle 421 (Postfix: "4.4.2 timeout
    // exceeded"). Once, on a fresh connection: nothing of this transaction was sent yet.
    try {
      this.#commands++;
      const reply = await this.#conn.client.mail(sender, params);
      if (reply.code !== 421) return reply;
    } catch (err) {
      if (!(err instanceof BackendError && err.kind === 'closed')) {
        this.#host.reportError(err);
        throw err;
      }
    }
    this.#conn.client.destroy();
    this.#conn = await this.#host.connect(this.#identity);
    this.#conn.transactions++;
    return this.#run((client) => client.mail(sender, params));
  }

  async rcpt(address: string, params: SmtpParams): Promise<SmtpResponse> {
    const reply = await this.#run((client) => client.rcpt(address, params));
    if (reply.code >= 400) this.#conn.rcptErrors++;
    return reply;
  }

  async data(message: Buffer | readonly Buffer[]): Promise<SmtpResponse> {
    const { clock, observer } = this.#host;
    const started = clock.now();
    const seconds = (): number => (clock.now() - started) / 1000;
    let reply: SmtpResponse;
    try {
      reply = await this.#run((client) => client.data(message));
    } catch (err) {
      observer?.relayLatency(seconds(), 'error');
      throw err;
    }
    const outcome: RelayOutcome = reply.code < 400 ? 'delivered' : reply.code < 500 ? 'tempfail' : 'rejected';
    observer?.relayLatency(seconds(), outcome);
    if (outcome === 'delivered') this.#conn.rcptErrors = 0; // as Postfix resets its error count
    return reply;
  }

  async release(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    this.#host.ended();
    await this.#host.recycle(this.#conn);
  }

  abort(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#host.ended();
    this.#conn.client.destroy();
  }

  #guard(): void {
    if (!this.#open) throw new Error('backend transaction already released');
  }

  async #run(operation: (client: SmtpClient) => Promise<SmtpResponse>): Promise<SmtpResponse> {
    this.#guard();
    this.#commands++;
    try {
      return await operation(this.#conn.client);
    } catch (err) {
      this.#host.reportError(err);
      throw err;
    }
  }
}
