/**
 * The relay towards the backend mail store, as the pipeline uses it: one BackendTransaction per
 * inbound transaction, mirroring MAIL, each RCPT and DATA, over a pooled connection.
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

interface Connection {
  readonly client: SmtpClient;
  /** Bound to one client by XCLIENT: never reused. */
  readonly bound: boolean;
  transactions: number;
  rcptErrors: number;
  /** Taken from the pool: the backend may have closed it meanwhile. */
  reused: boolean;
}

export function createBackend(options: BackendOptions, deps: BackendDeps = {}): Backend {
  const clock = deps.clock ?? systemClock;
  const observer = deps.observer;
  const pool = new IdlePool<Connection>({
    maxIdle: options.poolSize,
    idleTimeoutMs: options.idleTimeoutMs,
    clock,
    discard: (conn) => void quitQuietly(conn.client),
  });
  let closed = false;
  let busy = 0;

  const reportError = (err: unknown): void => {
    if (err instanceof BackendError) observer?.relayError(err.kind);
  };

  async function connect(identity: ClientIdentity): Promise<Connection> {
    let client: SmtpClient;
    try {
      client = await connectSmtp(options);
    } catch (err) {
      reportError(err);
      throw err;
    }
    const bound = options.xclient && client.capabilities.xclient !== null;
    if (bound) await sendXclient(client, identity);
    const conn: Connection = { client, bound, transactions: 0, rcptErrors: 0, reused: false };
    client.onClose(() => pool.remove(conn));
    return conn;
  }

  async function sendXclient(client: SmtpClient, identity: ClientIdentity): Promise<void> {
    try {
      const reply = await client.xclient({
        addr: identity.ip, name: identity.ptr, helo: identity.helo, proto: identity.esmtp ? 'ESMTP' : 'SMTP',
      });
      // Going on without it would make the backend judge Postern instead of the client.
      if (reply.code !== 220) throw new BackendError('protocol', `backend refused XCLIENT: ${formatResponse(reply)}`);
    } catch (err) {
      client.destroy();
      reportError(err);
      throw err;
    }
  }

  async function recycle(conn: Connection): Promise<void> {
    const { client } = conn;
    if (!client.usable) return;
    const worn = conn.transactions >= options.maxMessagesPerConnection
      || conn.rcptErrors >= options.maxRcptErrorsPerConnection;
    if (closed || conn.bound || worn || options.poolSize === 0) return quitQuietly(client);
    if (client.inTransaction) {
      try {
        const reply = await client.rset();
        if (reply.code !== 250) return quitQuietly(client);
      } catch {
        return; // the connection destroyed itself
      }
    }
    if (closed || !client.usable) return quitQuietly(client);
    conn.reused = true;
    if (!pool.put(conn)) await quitQuietly(client);
  }

  function transaction(initial: Connection, identity: ClientIdentity): BackendTransaction {
    let conn = initial;
    let open = true;
    let commands = 0;
    const guard = (): void => {
      if (!open) throw new Error('backend transaction already released');
    };
    const run = async (operation: (client: SmtpClient) => Promise<SmtpResponse>): Promise<SmtpResponse> => {
      guard();
      commands++;
      try {
        return await operation(conn.client);
      } catch (err) {
        reportError(err);
        throw err;
      }
    };
    return {
      get capabilities() {
        return conn.client.capabilities;
      },
      async mail(sender, params) {
        guard();
        if (commands > 0 || !conn.reused) return run((client) => client.mail(sender, params));
        // A pooled connection the backend closed while idle races our MAIL: it either fails
        // as closed or is answered with the backend's idle 421 (Postfix: "4.4.2 timeout
        // exceeded"). Once, on a fresh connection: nothing of this transaction was sent yet.
        try {
          commands++;
          const reply = await conn.client.mail(sender, params);
          if (reply.code !== 421) return reply;
        } catch (err) {
          if (!(err instanceof BackendError && err.kind === 'closed')) {
            reportError(err);
            throw err;
          }
        }
        conn.client.destroy();
        conn = await connect(identity);
        conn.transactions++;
        return run((client) => client.mail(sender, params));
      },
      async rcpt(address, params) {
        const reply = await run((client) => client.rcpt(address, params));
        if (reply.code >= 400) conn.rcptErrors++;
        return reply;
      },
      async data(message) {
        const started = clock.now();
        const seconds = (): number => (clock.now() - started) / 1000;
        let reply: SmtpResponse;
        try {
          reply = await run((client) => client.data(message));
        } catch (err) {
          observer?.relayLatency(seconds(), 'error');
          throw err;
        }
        const outcome: RelayOutcome = reply.code < 400 ? 'delivered' : reply.code < 500 ? 'tempfail' : 'rejected';
        observer?.relayLatency(seconds(), outcome);
        if (outcome === 'delivered') conn.rcptErrors = 0; // as Postfix resets its error count
        return reply;
      },
      async release() {
        if (!open) return;
        open = false;
        busy--;
        await recycle(conn);
      },
      abort() {
        if (!open) return;
        open = false;
        busy--;
        conn.client.destroy();
      },
    };
  }

  return {
    async open(identity) {
      if (closed) throw new BackendError('closed', 'backend relay is shut down');
      const pooled = options.xclient ? undefined : pool.take((conn) => conn.client.usable);
      const conn = pooled ?? await connect(identity);
      if (closed) { // close() ran while we were connecting
        void quitQuietly(conn.client);
        throw new BackendError('closed', 'backend relay is shut down');
      }
      conn.transactions++;
      busy++;
      return transaction(conn, identity);
    },
    probe: sharedProbe(async () => {
      const client = await connectSmtp(options);
      await client.quit();
      return { ok: true };
    }, clock, options.probeIntervalMs ?? 5_000),
    async close() {
      closed = true;
      await Promise.all(pool.drain().map((conn) => quitQuietly(conn.client)));
    },
    stats() {
      return { idle: pool.size, busy };
    },
  };
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
