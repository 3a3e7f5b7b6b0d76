/**
 * DMARC failure reports (RFC 9991) from the mail path to the relay, without ever slowing or
 * failing a message. offer() is called at the end of every transaction and returns at once:
 * when the message calls for a report (trigger.ts) it copies the header section and asks the
 * rate store for a token of the reported domain's bucket; a report that gets one waits in a
 * bounded in-memory queue, and one loop per process sends the queue paced to ratePerMinute.
 *
 * The caps, so that a spoofing flood cannot turn us into a report cannon (RFC 9991 §8.1):
 *   - per reported domain (the DMARC policy domain, so random subdomains share it): a GCRA
 *     bucket of perDomainPerHour in the gateway's rate store, i.e. shared by the node's workers
 *     and, with Redis, by every node; a report without a token is dropped (rate-limited);
 *   - per process: at most queueSize reports waiting or asking for a token (queue-full), and
 *     ratePerMinute leaving.
 *
 * At most once, by design: nothing is stored, a report the relay did not take (4xx, 5xx, no
 * connection, DNS trouble verifying its destination) is counted failed and not retried, and a
 * restart loses the queue. For per-message reports a loss is better than a duplicate.
 */
import type { Logger } from 'pino';
import type { DNSResolver } from 'mailauth';
import type { Clock } from '../../core/clock.ts';
import type { BucketRequest, RateStore } from '../../reputation/types.ts';
import { relayMessage, replyText, type RelaySettings } from '../deliver.ts';
import { verifyDestination } from '../destinations.ts';
import { signReport, type Signer } from '../mail.ts';
import type { FailureOutcome, ReportMetrics } from '../metrics.ts';
import { Pacer } from '../pacer.ts';
import type { TransactionOutcome } from '../row.ts';
import { composeFailureReport, type FailureReportInput } from './arf.ts';
import { createRedactor, headerSection, isReportMessage, redactHeader } from './redact.ts';
import { failureTrigger, type FailureTrigger } from './trigger.ts';

/** What the end of a transaction hands over: the outcome the aggregate collector gets, and the message. */
export interface FailureOffer extends TransactionOutcome {
  /** The message as it arrived (chunks); only its header section is copied, and only when a report is due. */
  readonly message: readonly Buffer[];
  /** When the transaction started (ms). */
  readonly arrival: number;
  /** RFC 3461 ENVID of MAIL FROM, if the client gave one. */
  readonly envelopeId?: string | undefined;
}

export interface FailureReporter {
  /** Never throws, never waits: the mail path calls it. */
  offer(o: FailureOffer): void;
  /** Stops: the delivery in progress is cut off, the queue is dropped (counted failed). */
  close(): Promise<void>;
}

export interface FailureSettings {
  readonly perDomainPerHour: number;
  readonly ratePerMinute: number;
  readonly queueSize: number;
  /** Lower-case header field names left out. */
  readonly omitHeaders: ReadonlySet<string>;
  /** Our reporting address: From: and MAIL FROM. */
  readonly from: string;
  /** Our host name: Reporting-MTA, authserv-id. */
  readonly hostname: string;
  readonly userAgent: string;
}

export interface FailureDeps {
  readonly settings: FailureSettings;
  /** The gateway's rate store (memory, the primary's over IPC, or Redis). */
  readonly store: Pick<RateStore, 'take'>;
  readonly resolver: DNSResolver;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ReportMetrics | null;
  readonly relay: RelaySettings;
  readonly signer: Signer | null;
}

/** A report waiting to be sent: what it needs of the transaction, never the message itself. */
interface Job {
  readonly trigger: FailureTrigger;
  readonly offer: Pick<FailureOffer, 'facts' | 'action' | 'arrival' | 'envelopeId'>;
  /** The header section, copied. */
  readonly header: Buffer;
}

const STOP_WAIT_MS = 5_000;
const DROP_LOG_INTERVAL_MS = 60_000;

export function createFailureReporter(deps: FailureDeps): FailureReporter {
  const { settings, logger, clock } = deps;
  const queue: Job[] = [];
  const pacer = new Pacer(settings.ratePerMinute);
  const abort = new AbortController();
  let asking = 0; // offers waiting for the rate store's answer
  let running: Promise<void> | null = null;
  let closed = false;
  let lastDropLog = 0;

  const count = (outcome: FailureOutcome, fields: Record<string, unknown>, detail: string): void => {
    deps.metrics?.failureReports.inc({ outcome });
    if (outcome === 'rate-limited' || outcome === 'queue-full') {
      // a flood drops thousands: the metric counts them all, the log says so once a minute
      if (clock.now() - lastDropLog < DROP_LOG_INTERVAL_MS) return;
      lastDropLog = clock.now();
    }
    logger[outcome === 'failed' ? 'warn' : 'info']({ event: 'dmarc-failure-report', outcome, ...fields, detail }, `DMARC failure report ${outcome}`);
  };

  const bucket = (domain: string): BucketRequest => ({
    limiter: 'dmarc-failure-reports', subject: { kind: 'domain', id: domain },
    ratePerSecond: settings.perDomainPerHour / 3600, burst: settings.perDomainPerHour, cost: 1,
  });

  const kick = (): void => {
    if (running || closed) return;
    running = drain().finally(() => {
      running = null;
      if (queue.length > 0) kick();
    });
  };

  const drain = async (): Promise<void> => {
    while (!closed) {
      const job = queue.shift();
      if (!job) return;
      await sendJob(deps, pacer, abort.signal, job, count).catch((err: unknown) => count('failed', { domain: job.trigger.policyDomain }, (err as Error).message));
    }
  };

  return {
    offer(o) {
      if (closed) return;
      try {
        const trigger = failureTrigger(o);
        if (!trigger) return;
        const where = { domain: trigger.policyDomain };
        if (asking + queue.length >= settings.queueSize) return count('queue-full', where, `${settings.queueSize} failure reports waiting already`);
        const header = headerSection(o.message);
        if (!header || isReportMessage(header)) return;
        // kept: the facts and the header copy, not the message (its chunks go with the transaction)
        const job: Job = { trigger, header, offer: { facts: o.facts, action: o.action, arrival: o.arrival, envelopeId: o.envelopeId } };
        asking++;
        deps.store.take([bucket(trigger.policyDomain)], clock.now()).then((r) => {
          if (!r.allowed) return count(r.storeUnavailable ? 'failed' : 'rate-limited', where, r.storeUnavailable ? 'rate store unavailable' : `more than ${settings.perDomainPerHour} an hour for this domain`);
          if (closed) return count('failed', where, 'shutting down');
          queue.push(job);
          kick();
        }, (err: unknown) => count('failed', where, `rate store: ${(err as Error).message}`)).finally(() => {
          asking--;
        });
      } catch (err) {
        count('failed', {}, (err as Error).message);
      }
    },
    async close() {
      closed = true;
      abort.abort();
      for (const job of queue.splice(0)) count('failed', { domain: job.trigger.policyDomain }, 'shutting down: not sent');
      await Promise.race([running, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
    },
  };
}

/** One report to each of its verified destinations (RFC 9991 §5: RFC 9990 §3 with ruf= for rua=). */
async function sendJob(deps: FailureDeps, pacer: Pacer, signal: AbortSignal, job: Job,
  count: (outcome: FailureOutcome, fields: Record<string, unknown>, detail: string) => void): Promise<void> {
  const { trigger, offer } = job;
  const redact = createRedactor();
  const header = redactHeader(job.header, { omit: deps.settings.omitHeaders, redact });
  const input: FailureReportInput = {
    trigger, facts: offer.facts, action: offer.action, arrival: offer.arrival, envelopeId: offer.envelopeId,
    header, redact, spfRecord: await spfRecord(deps.resolver, offer),
  };
  for (const to of trigger.destinations) {
    const where = { domain: trigger.policyDomain, destination: to };
    // RFC 9991 §5: the check of RFC 9990 §3 with ruf= where it reads rua=
    const check = await verifyDestination(trigger.policyDomain, to, deps.resolver, 'ruf');
    if (check.result === 'refused') {
      count('refused', where, check.detail);
      continue;
    }
    if (check.result === 'temperror') {
      count('failed', where, 'destination verification: DNS error (not retried)');
      continue;
    }
    if (!await pacer.pace(signal)) return count('failed', where, 'shutting down: not sent');
    const env = { from: deps.settings.from, to: check.to.join(', '), hostname: deps.settings.hostname, userAgent: deps.settings.userAgent, now: deps.clock.now() };
    const text = composeFailureReport(input, env);
    const message = Buffer.from(deps.signer ? await signReport(text, deps.signer) : text, 'latin1');
    const reply = await relayMessage(deps.relay, { from: deps.settings.from, to: check.to }, message, { signal }).catch((err: unknown) => err as Error);
    if (reply instanceof Error) count('failed', where, reply.message);
    else count(reply.code < 300 ? 'sent' : 'failed', where, replyText(reply));
  }
}

/** The SPF record of the domain whose SPF check failed (SPF-DNS), or null: looked up again here, off the mail path (the resolver caches it). */
async function spfRecord(resolver: DNSResolver, offer: Job['offer']): Promise<string | null> {
  const { spf } = offer.facts;
  if (spf.result !== 'fail' || !spf.domain) return null;
  try {
    const txt = (await resolver(spf.domain, 'TXT')) as unknown as Array<string | string[]>;
    return txt.map((r) => (Array.isArray(r) ? r.join('') : String(r))).find((r) => /^v=spf1(\s|$)/i.test(r)) ?? null;
  } catch {
    return null;
  }
}
