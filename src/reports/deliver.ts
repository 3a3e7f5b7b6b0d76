/**
 * One report to one destination through the relay, with the delivery state kept in the store
 * so that no report is sent twice, whichever node crashes when (see sender.ts for the states).
 *
 * The "sending" mark is written after the last message byte and before the final "."
 * (SmtpClient.data's beforeEnd): anything that fails before it (connect, MAIL, RCPT, DATA,
 * the bytes) leaves the delivery pending and it is retried. Once the "." may have left, only
 * the relay's reply can tell: 2xx → sent, 4xx → pending again, 5xx → failed. No reply (our
 * process died, the connection broke, the relay timed out) leaves "sending"/"uncertain", which
 * is never resent: the one window left is the RFC 1047 one, mirrored (a report lost rather
 * than duplicated), between the "." and the relay's answer.
 *
 * relayMessage, the SMTP part alone, also carries the failure reports (failure/), which keep
 * no state: they are sent at most once.
 */
import { BackendError, connectSmtp, type SmtpResponse } from '../relay/smtp-client.ts';
import type { DeliveryOutcome } from './metrics.ts';
import type { ReportStore } from './store.ts';

export interface RelaySettings {
  readonly host: string;
  readonly port: number;
  /** Our EHLO name. */
  readonly hostname: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly dataTimeoutMs: number;
}

export interface DeliveryInput {
  readonly store: ReportStore;
  readonly domain: string;
  readonly jobId: string;
  readonly token: string;
  /** Job field of this (part, destination). */
  readonly field: string;
  /** Its current value ('' or 'pending:<n>'). */
  readonly current: string;
  readonly from: string;
  /** The destination, or the addresses its verification record names instead (destinations.ts). */
  readonly to: string | readonly string[];
  readonly message: Buffer;
  readonly relay: RelaySettings;
  readonly lockTtlMs: number;
  readonly now: () => number;
}

export interface DeliveryResult {
  readonly outcome: DeliveryOutcome;
  readonly detail: string;
}

const attemptsOf = (state: string): number => Number(/^pending:(\d+)$/.exec(state)?.[1] ?? 0);

/**
 * One message through the relay, on a connection of its own: the last reply (MAIL, an RCPT or
 * DATA refused, or the final reply after the message). With several recipients (one
 * destination's override, RFC 9990 §3) each must be accepted: the message goes to all of them
 * or to none, so that their one delivery state stays true. Connection trouble
 * rejects (BackendError), and so does a `beforeEnd` that throws: the "." is then never sent.
 * `signal` destroys the connection (shutdown).
 */
export async function relayMessage(relay: RelaySettings, envelope: { readonly from: string; readonly to: string | readonly string[] }, message: Buffer,
  opts: { readonly beforeEnd?: () => Promise<void>; readonly signal?: AbortSignal } = {}): Promise<SmtpResponse> {
  const client = await connectSmtp({ host: relay.host, port: relay.port, hostname: relay.hostname, tls: 'none', rejectUnauthorized: true,
    connectTimeoutMs: relay.connectTimeoutMs, commandTimeoutMs: relay.commandTimeoutMs, dataTimeoutMs: relay.dataTimeoutMs });
  const stop = (): void => client.destroy();
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  try {
    let reply = await client.mail(envelope.from);
    const accepted = (): boolean => reply.code === 250 || reply.code === 251;
    for (const to of typeof envelope.to === 'string' ? [envelope.to] : envelope.to) {
      if (!accepted()) break;
      reply = await client.rcpt(to);
    }
    if (accepted()) reply = await client.data(message, opts.beforeEnd);
    void client.quit().catch(() => undefined);
    return reply;
  } catch (err) {
    client.destroy();
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', stop);
  }
}

export async function deliver(d: DeliveryInput): Promise<DeliveryResult> {
  const { store, domain, jobId, field } = d;
  const sending = `sending:${d.token}`;
  const pendingAgain = `pending:${attemptsOf(d.current) + 1}`;
  let marked = false;
  // Deferred before the mark: count the attempt (it spaces the retries out).
  const defer = async (detail: string): Promise<DeliveryResult> => {
    await store.cas(domain, jobId, d.token, field, [d.current], pendingAgain, d.lockTtlMs);
    return { outcome: 'deferred', detail };
  };
  let reply: SmtpResponse;
  try {
    reply = await relayMessage(d.relay, d, d.message, {
      beforeEnd: async () => {
        // Fenced: only the lock holder, and only from a state that is not final.
        if (!await store.cas(domain, jobId, d.token, field, [d.current], sending, d.lockTtlMs)) throw new Error('lost the job lock or the state changed');
        marked = true;
        if (!await store.durable(domain)) {
          // A failover could forget the mark: take it back (nothing was sent) and retry later.
          await store.cas(domain, jobId, d.token, field, [sending], d.current, 0);
          marked = false;
          throw new Error('the sending mark did not reach a Redis replica');
        }
      },
    });
  } catch (err) {
    // Connect, MAIL, RCPT, DATA or the bytes failed before the mark: nothing was delivered.
    if (!marked) return defer((err as Error).message);
    // The "." may have reached the relay: we cannot know whether it took the report.
    await store.cas(domain, jobId, '', field, [sending], `uncertain:${d.token}`, 0);
    return { outcome: 'uncertain', detail: err instanceof BackendError ? err.message : String(err) };
  }
  const text = replyText(reply);
  if (!marked) {
    // Refused before the message: MAIL, RCPT or DATA itself.
    if (reply.code >= 500) {
      await store.cas(domain, jobId, d.token, field, [d.current], `failed:${reply.code}`, d.lockTtlMs);
      return { outcome: 'failed', detail: text };
    }
    return defer(text);
  }
  const next = reply.code < 300 ? `sent:${d.now()}` : reply.code < 500 ? pendingAgain : `failed:${reply.code}`;
  // A sent mark needs no lock: the attempt names itself (another node may have called it uncertain meanwhile).
  await store.cas(domain, jobId, '', field, [sending, `uncertain:${d.token}`], next, 0);
  return { outcome: reply.code < 300 ? 'sent' : reply.code < 500 ? 'deferred' : 'failed', detail: text };
}

/** A reply on one line, for logs: "550 5.7.1 text". */
export function replyText(reply: SmtpResponse): string {
  return `${reply.code} ${reply.enhanced ?? ''} ${reply.text}`.replace(/\s+/g, ' ').trim();
}
