/**
 * The soak's senders: each worker behaves like a sending MTA. It keeps its connection for
 * several messages, and per recipient: a 250 at the end of DATA is delivered, a 5xx refused,
 * a 4xx or a broken connection before the final dot is retried later (same message, same
 * Message-ID) until `maxAttempts`. A connection that breaks after the final dot leaves the
 * outcome unknown (RFC 1047): that recipient is not retried and the accounting checks it apart.
 * A few clients die on purpose right after the dot, to put messages in that window.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionError, SmtpSession, type Reply } from '../bench/smtp-session.ts';
import type { SoakMessage } from './messages.ts';

export type Final = 'delivered' | 'refused' | 'gave-up' | 'aborted-after-dot' | 'broken-after-dot' | 'timeout-after-dot';

/** One (message, recipient): the unit a sending MTA retries and the accounting counts. */
export interface Delivery {
  /** What the accounting needs of the message (not its bytes: a run keeps tens of thousands). */
  readonly message: Pick<SoakMessage, 'id' | 'bodySha' | 'header'>;
  readonly rcpt: string;
  final: Final | null;
  attempts: number;
  /** The last reply or socket error seen for it. */
  last: string;
}

export interface ClientStats {
  /** "MAIL 451", "DATA-END 250", "greeting 421" → count. */
  readonly replies: Map<string, number>;
  /** Socket failures before the final dot ("ECONNRESET", "closed", "timeout") → count. */
  readonly socketErrors: Map<string, number>;
  /** A reply that did not come within the client's timeout: the gateway hung. */
  timeouts: number;
  transactions: number;
}

export interface ClientOptions {
  readonly port: number;
  readonly clients: number;
  /** Per reply; the gateway's own deadlines are far below it. */
  readonly replyTimeoutMs: number;
  readonly maxAttempts: number;
  /** Share of final dots after which the client resets instead of reading the reply. */
  readonly abortRate: number;
  /** The next message to send, or null when the run is over. */
  readonly next: () => Promise<SoakMessage | null>;
  readonly helo?: string;
}

const bump = (map: Map<string, number>, key: string): void => {
  map.set(key, (map.get(key) ?? 0) + 1);
};

export async function runClients(opts: ClientOptions): Promise<{ deliveries: Delivery[]; stats: ClientStats }> {
  const deliveries: Delivery[] = [];
  const stats: ClientStats = { replies: new Map(), socketErrors: new Map(), timeouts: 0, transactions: 0 };
  const worker = async (): Promise<void> => {
    let session: SmtpSession | null = null;
    for (let message = await opts.next(); message; message = await opts.next()) {
      const { id, bodySha, header } = message;
      const units: Delivery[] = message.to.map((rcpt) => ({ message: { id, bodySha, header }, rcpt, final: null, attempts: 0, last: '' }));
      deliveries.push(...units);
      for (let attempt = 1; units.some((u) => u.final === null); attempt++) {
        const active = units.filter((u) => u.final === null);
        if (attempt > opts.maxAttempts) {
          for (const u of active) u.final = 'gave-up';
          break;
        }
        for (const u of active) u.attempts++;
        session = await attemptOnce(opts, stats, session, message, active);
        // a sending MTA waits before retrying; with jitter so the workers do not march in step
        if (units.some((u) => u.final === null)) await sleep(Math.min(2_000, 25 * 2 ** attempt) * (0.5 + Math.random()));
      }
    }
    await session?.quit();
  };
  await Promise.all(Array.from({ length: opts.clients }, worker));
  return { deliveries, stats };
}

class Transient extends Error {}

/** One try of one message on the worker's session; returns the session to go on with (null: reconnect). */
async function attemptOnce(opts: ClientOptions, stats: ClientStats, current: SmtpSession | null, message: SoakMessage, active: Delivery[]): Promise<SmtpSession | null> {
  let session = current;
  /** The recipients whose message was sent in full: a break now leaves their outcome unknown. */
  let afterDot: Delivery[] | null = null;
  const expect = (step: string, reply: Reply, ok: number, units: Delivery[]): boolean => {
    bump(stats.replies, `${step} ${reply.code}`);
    if (reply.code === ok) return true;
    for (const u of units) {
      u.last = `${step}: ${reply.line}`;
      if (reply.code >= 500) u.final = 'refused';
    }
    if (reply.code === 421) throw new Transient('421'); // the server closes: reconnect
    return false;
  };
  try {
    if (!session) {
      const opened = await SmtpSession.open(opts.port, opts.replyTimeoutMs);
      session = opened.session;
      if (opened.greeting.code !== 220) {
        bump(stats.replies, `greeting ${opened.greeting.code}`);
        throw new Transient('greeting');
      }
      if (!expect('EHLO', await session.command(`EHLO ${opts.helo ?? 'mta.soak.example'}`), 250, [])) throw new Transient('EHLO');
    }
    stats.transactions++;
    if (!expect('MAIL', await session.command(`MAIL FROM:<${message.from}>`), 250, active)) return await reset(session);
    const accepted: Delivery[] = [];
    for (const u of active) if (expect('RCPT', await session.command(`RCPT TO:<${u.rcpt}>`), 250, [u])) accepted.push(u);
    if (accepted.length === 0) return await reset(session);
    if (!expect('DATA', await session.command('DATA'), 354, accepted)) return await reset(session);
    afterDot = accepted;
    if (Math.random() < opts.abortRate) {
      await session.sendAndReset(message.wire);
      for (const u of accepted) u.final = 'aborted-after-dot';
      return null;
    }
    if (expect('DATA-END', await session.data(message.wire), 250, accepted)) for (const u of accepted) u.final = 'delivered';
    return session;
  } catch (err) {
    session?.destroy();
    if (err instanceof SessionError) {
      if (err.kind === 'timeout') stats.timeouts++;
      if (afterDot === null) bump(stats.socketErrors, err.kind);
      for (const u of afterDot ?? active) {
        u.last = `socket: ${err.kind}`;
        if (afterDot) u.final = err.kind === 'timeout' ? 'timeout-after-dot' : 'broken-after-dot';
      }
    } else if (!(err instanceof Transient)) throw err;
    return null;
  }
}

/** RSET after a refused step (RFC 5321 §4.1.1.5), keeping the connection. */
async function reset(session: SmtpSession): Promise<SmtpSession> {
  const reply = await session.command('RSET');
  if (reply.code !== 250) throw new Transient('RSET');
  return session;
}
