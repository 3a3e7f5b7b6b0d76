/**
 * A sending run: close the periods that ended (or, with `closeOpen`, the open ones too), then
 * work through the report jobs that are due. Any node (or the CLI) may run it at any time:
 * each job is worked on under its own lock, and each (report, destination) has a state in the
 * store that only moves forward:
 *
 *   '' / pending:<n> ──"." about to be sent──▶ sending:<token> ──2xx──▶ sent:<time>
 *        │  ▲                                     │  4xx ──▶ pending:<n+1>     5xx ──▶ failed:<code>
 *        │  └──── connect/MAIL/RCPT/DNS trouble   └─ no answer / node gone ──▶ uncertain:<token> (never resent)
 *        ├── destination not verified (RFC 9990 §3) ──▶ refused
 *        └── older than maxAgeHours ──▶ failed:expired
 *
 * A job whose states are all final is finished; otherwise it is scheduled again with backoff.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { DNSResolver } from 'mailauth';
import type { Clock } from '../core/clock.ts';
import type { DmarcPublished } from '../core/facts.ts';
import { deliver, type RelaySettings } from './deliver.ts';
import { mailtoAddresses, verifyDestination, type Verification } from './destinations.ts';
import { composeReport, signReport, type Signer } from './mail.ts';
import type { DeliveryOutcome, ReportMetrics } from './metrics.ts';
import { buildReports, submitterOf, type ReportSettings } from './report.ts';
import { STATE_PREFIX, type JobData, type ReportStore } from './store.ts';

export interface SenderDeps {
  readonly store: ReportStore;
  readonly resolver: DNSResolver;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ReportMetrics | null;
  readonly settings: ReportSettings & { readonly maxAgeMs: number; readonly ratePerMinute: number };
  readonly relay: RelaySettings;
  readonly signer: Signer | null;
}

export interface RunOptions {
  /** Close the open periods first (`reports send --now`). */
  readonly closeOpen?: boolean;
  /** Retry deferred deliveries now instead of after their backoff (the CLI). */
  readonly ignoreBackoff?: boolean;
  /** Stops the run between two deliveries (shutdown); what is left stays due. */
  readonly signal?: AbortSignal;
}

export type RunSummary = Record<DeliveryOutcome | 'generated' | 'busy', number>;

/** A period is closed this long after its end, so that messages decided at its last moment are in. */
export const CLOSE_GRACE_MS = 60_000;
const LOCK_TTL_MS = 120_000;
const KEEP_FINISHED_MS = 7 * 86_400_000;
const FINAL = /^(sent|refused|failed|uncertain)(:|$)/;

interface StoredPart { reportId: string; filename: string; begin: number; end: number; messages: number; records: number; gzip: string }

export function createSender(deps: SenderDeps) {
  const { store, clock, logger } = deps;
  const interval = 60_000 / deps.settings.ratePerMinute;
  let nextSlot = 0;
  let signal: AbortSignal | undefined;
  /** Pacing: at most ratePerMinute report messages leave this process per minute. False when aborted. */
  const pace = async (): Promise<boolean> => {
    const wait = nextSlot - Date.now();
    nextSlot = Math.max(nextSlot, Date.now()) + interval;
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
    return !signal?.aborted;
  };

  async function closePeriods(domain: string, now: number, closeOpen: boolean): Promise<void> {
    for (const p of await store.openPeriods(domain)) {
      if (p.periodEnd <= now && (closeOpen || p.periodEnd + CLOSE_GRACE_MS <= now)) {
        await store.closePeriod({ domain, period: p.period, jobId: String(p.period), end: p.periodEnd, due: now, reopenAt: null });
      } else if (closeOpen && p.rows.size > 0) {
        // Closed early: this part ends now, the rest of the period becomes a later report.
        await store.closePeriod({ domain, period: p.period, jobId: `${p.period}-${now}`, end: now, due: now, reopenAt: now });
      }
    }
  }

  /** The job's reports, made once and stored, so every attempt sends the same report-ids. */
  async function partsOf(job: JobData, token: string, published: DmarcPublished, summary: RunSummary): Promise<StoredPart[]> {
    if (job.parts) return JSON.parse(job.parts) as StoredPart[];
    const built = buildReports({ domain: job.domain, published, begin: job.begin, end: job.end, rows: job.rows }, deps.settings);
    const parts: StoredPart[] = built.map((b) => ({
      reportId: b.reportId, filename: b.filename, begin: b.begin, end: b.end, messages: b.messages, records: b.records, gzip: b.gzip.toString('base64'),
    }));
    if (!await store.cas(job.domain, job.id, token, 'parts', [''], JSON.stringify(parts), LOCK_TTL_MS)) throw new Error('lost the job lock');
    summary.generated += parts.length;
    deps.metrics?.generated.inc(parts.length);
    return parts;
  }

  async function message(job: JobData, part: StoredPart, to: string): Promise<Buffer> {
    const text = composeReport({
      from: deps.settings.email, to, domain: job.domain, submitter: submitterOf(deps.settings.email), orgName: deps.settings.orgName,
      part: { ...part, xml: '', gzip: Buffer.from(part.gzip, 'base64') }, now: clock.now(),
    });
    return Buffer.from(deps.signer ? await signReport(text, deps.signer) : text, 'utf8');
  }

  function count(summary: RunSummary, outcome: DeliveryOutcome, fields: Record<string, unknown>, detail: string): void {
    summary[outcome]++;
    deps.metrics?.deliveries.inc({ outcome });
    const level = outcome === 'sent' ? 'info' : outcome === 'deferred' ? 'warn' : 'error';
    logger[level]({ event: 'dmarc-report', outcome, ...fields, detail }, `DMARC report ${outcome}`);
  }

  async function work(job: JobData, token: string, summary: RunSummary): Promise<boolean> {
    const published = JSON.parse(job.policy) as DmarcPublished;
    const destinations = mailtoAddresses(published.rua);
    const parts = await partsOf(job, token, published, summary);
    const verified = new Map<string, Verification>();
    for (const [index, part] of parts.entries()) {
      for (const to of destinations) {
        const field = `${STATE_PREFIX}${index}:${to}`;
        const current = job.states.get(field) ?? '';
        const where = { domain: job.domain, report_id: part.reportId, destination: to };
        if (FINAL.test(current)) continue;
        if (current.startsWith('sending:')) {
          // A node died (or lost its lock) after the mark: the report may have gone. Never resend.
          if (current !== `sending:${token}` && await store.cas(job.domain, job.id, token, field, [current], `uncertain:${current.slice(8)}`, LOCK_TTL_MS)) {
            count(summary, 'uncertain', where, 'a previous attempt stopped after the message end without a recorded answer');
          }
          continue;
        }
        if (clock.now() - job.end > deps.settings.maxAgeMs) {
          if (await store.cas(job.domain, job.id, token, field, [current], 'failed:expired', LOCK_TTL_MS)) count(summary, 'failed', where, 'not delivered within maxAgeHours');
          continue;
        }
        const check = verified.get(to) ?? await verifyDestination(job.domain, to, deps.resolver);
        verified.set(to, check);
        if (check === 'refused') {
          if (await store.cas(job.domain, job.id, token, field, [current], 'refused', LOCK_TTL_MS)) {
            count(summary, 'refused', where, `${job.domain}._report._dmarc.${to.slice(to.lastIndexOf('@') + 1)} does not authorise this destination (RFC 9990 §3)`);
          }
          continue;
        }
        if (check === 'temperror') {
          count(summary, 'deferred', where, 'destination verification: DNS error');
          continue;
        }
        if (!await pace()) return false;
        const result = await deliver({
          store, domain: job.domain, jobId: job.id, token, field, current, from: deps.settings.email, to,
          message: await message(job, part, to), relay: deps.relay, lockTtlMs: LOCK_TTL_MS, now: () => clock.now(),
        });
        count(summary, result.outcome, where, result.detail);
      }
    }
    // Finished when every (report, destination) has a final state.
    const after = await store.load(job.domain, job.id);
    return parts.every((_, index) => destinations.every((to) => FINAL.test(after?.states.get(`${STATE_PREFIX}${index}:${to}`) ?? '')));
  }

  async function runJob(domain: string, jobId: string, summary: RunSummary): Promise<void> {
    const token = await store.lock(domain, jobId, LOCK_TTL_MS);
    if (!token) {
      summary.busy++;
      return;
    }
    try {
      const job = await store.load(domain, jobId);
      if (!job || !job.policy) {
        await store.finish(domain, jobId, KEEP_FINISHED_MS);
        return;
      }
      if (await work(job, token, summary)) {
        await store.finish(domain, jobId, KEEP_FINISHED_MS);
      } else {
        const attempts = Math.max(0, ...[...(await store.load(domain, jobId))?.states.values() ?? []].map((s) => Number(/^pending:(\d+)$/.exec(s)?.[1] ?? 0)));
        // Backoff 5, 10, 20 … minutes, at most an hour.
        await store.schedule(domain, jobId, clock.now() + Math.min(3_600_000, 300_000 * 2 ** Math.max(0, attempts - 1)));
      }
    } finally {
      await store.unlock(domain, jobId, token);
    }
  }

  return {
    /** One run over every domain; errors of one domain are logged and do not stop the others. */
    async run(opts: RunOptions = {}): Promise<RunSummary> {
      const summary: RunSummary = { sent: 0, deferred: 0, failed: 0, refused: 0, uncertain: 0, generated: 0, busy: 0 };
      signal = opts.signal;
      let pending = 0;
      for (const domain of await store.domains()) {
        if (signal?.aborted) break;
        try {
          const now = clock.now();
          await closePeriods(domain, now, opts.closeOpen ?? false);
          for (const jobId of await store.jobs(domain, opts.ignoreBackoff ? Infinity : now)) await runJob(domain, jobId, summary);
          pending += (await store.jobs(domain, Infinity)).length;
        } catch (err) {
          summary.deferred++;
          deps.metrics?.deliveries.inc({ outcome: 'deferred' });
          logger.error({ event: 'dmarc-report', domain, err: (err as Error).message }, 'DMARC report run failed for a domain; retried next run');
        }
      }
      deps.metrics?.pending.set(pending);
      return summary;
    },
  };
}

export type Sender = ReturnType<typeof createSender>;
