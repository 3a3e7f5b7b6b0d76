/**
 * The load generator: C workers sending pre-signed messages to one SMTP port, either a fresh
 * connection per message (as an MTA mostly does) or several messages per connection (MAIL
 * again right after the 250, RFC 5321 §4.1.4: no RSET needed after a completed transaction).
 * Every 250 is recorded by its unique envelope sender, so the sink can be checked against it.
 */
import { performance } from 'node:perf_hooks';
import { HELO, RECIPIENT, SENDER_DOMAIN } from './mail.ts';
import { SessionError, SmtpSession, type Reply } from './smtp-session.ts';

export type Mode = 'fresh' | 'reuse';

export interface PointSpec {
  readonly concurrency: number;
  readonly mode: Mode;
  /** Workers start no new message after this. */
  readonly durationMs: number;
  /** Upper bound on messages started, whatever the duration. */
  readonly maxMessages: number;
  /** reuse mode: messages sent over one connection before QUIT and a new one. */
  readonly messagesPerConnection: number;
}

export interface PointResult {
  readonly started: number;
  /** Envelope senders of the messages that got 250 at end of DATA. */
  readonly accepted: readonly string[];
  /** Failure description → count ("RCPT: 550 5.7.1 …", "DATA: timeout"). */
  readonly errors: ReadonlyMap<string, number>;
  /** Per accepted message; fresh: connect → end-of-data reply; reuse: MAIL → end-of-data reply. */
  readonly latenciesMs: readonly number[];
  /** From the first message started to the last one finished. */
  readonly elapsedMs: number;
}

export interface LoadOptions {
  readonly port: number;
  readonly spec: PointSpec;
  readonly messages: readonly Buffer[];
  /** Makes envelope senders unique across points: bench-<label>-<n>@… */
  readonly label: string;
  /** Per reply; a slower reply counts as an error. */
  readonly replyTimeoutMs: number;
}

class StepFailure extends Error {}

function expect(step: string, reply: Reply, code: number): void {
  // Our replies end with "(session id)": drop it so equal failures group together.
  if (reply.code !== code) throw new StepFailure(`${step}: ${reply.line.replace(/\s*\([^()]*\)$/, '').slice(0, 100)}`);
}

function describe(step: string, err: unknown): string {
  if (err instanceof StepFailure) return err.message;
  if (err instanceof SessionError) return `${step}: ${err.kind}`;
  return `${step}: ${(err as Error).message}`;
}

export async function runPoint(options: LoadOptions): Promise<PointResult> {
  const { port, spec, messages, label, replyTimeoutMs } = options;
  const accepted: string[] = [];
  const errors = new Map<string, number>();
  const latenciesMs: number[] = [];
  const startedAt = performance.now();
  const deadline = startedAt + spec.durationMs;
  let started = 0;

  const next = (): number | null => (started < spec.maxMessages && performance.now() < deadline ? started++ : null);
  const fail = (key: string): void => {
    errors.set(key, (errors.get(key) ?? 0) + 1);
  };

  /** One transaction on an open session; throws StepFailure/SessionError. */
  async function transaction(session: SmtpSession, n: number): Promise<string> {
    const sender = `bench-${label}-${n}@${SENDER_DOMAIN}`;
    expect('MAIL', await session.command(`MAIL FROM:<${sender}>`), 250);
    expect('RCPT', await session.command(`RCPT TO:<${RECIPIENT}>`), 250);
    expect('DATA', await session.command('DATA'), 354);
    expect('end of DATA', await session.data(messages[n % messages.length]!), 250);
    return sender;
  }

  async function open(): Promise<SmtpSession> {
    const { session, greeting } = await SmtpSession.open(port, replyTimeoutMs);
    try {
      expect('greeting', greeting, 220);
      expect('EHLO', await session.command(`EHLO ${HELO}`), 250);
    } catch (err) {
      session.destroy();
      throw err;
    }
    return session;
  }

  async function freshWorker(): Promise<void> {
    for (let n = next(); n !== null; n = next()) {
      const t0 = performance.now();
      let session: SmtpSession | null = null;
      let step = 'connect';
      try {
        session = await open();
        step = 'transaction';
        const sender = await transaction(session, n);
        latenciesMs.push(performance.now() - t0);
        accepted.push(sender);
        await session.quit();
      } catch (err) {
        fail(describe(step, err));
        session?.destroy();
      }
    }
  }

  async function reuseWorker(): Promise<void> {
    let session: SmtpSession | null = null;
    let sent = 0;
    for (let n = next(); n !== null; n = next()) {
      let step = 'connect';
      try {
        if (session && sent >= spec.messagesPerConnection) {
          await session.quit();
          session = null;
        }
        if (!session) {
          session = await open();
          sent = 0;
        }
        step = 'transaction';
        const t0 = performance.now();
        sent++;
        const sender = await transaction(session, n);
        latenciesMs.push(performance.now() - t0);
        accepted.push(sender);
      } catch (err) {
        fail(describe(step, err));
        session?.destroy(); // the state after a failure is unknown: start over on a new connection
        session = null;
      }
    }
    await session?.quit();
  }

  const worker = spec.mode === 'fresh' ? freshWorker : reuseWorker;
  await Promise.all(Array.from({ length: spec.concurrency }, () => worker()));
  return { started, accepted, errors, latenciesMs, elapsedMs: performance.now() - startedAt };
}
