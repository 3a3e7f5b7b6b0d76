/**
 * A sending run: close the periods that ended (and, with `closeOpen`, cut the open ones), then
 * work through the report jobs that are due. Any node (or the CLI) may run it at any time:
 * each job is worked on under its own lock, and each (report, destination) has a state in the
 * store that only moves forward:
 *
 *   '' / pending:<n> ──"." about to be sent──▶ sending:<token> ──2xx──▶ sent:<time>
 *        │  ▲                                     │  4xx ──▶ pending:<n+1>     5xx ──▶ failed:<code>
 *        │  └──── connect/MAIL/RCPT/DNS trouble   └─ no answer / node gone ──▶ uncertain:<token> (never resent)
 *        ├── destination not verified, or redirected off its host (RFC 9990 §3) ──▶ refused
 *        └── older than maxAgeHours ──▶ failed:expired
 *
 * A job whose states are all final is finished; otherwise it is scheduled again with backoff.
 */
import type { Logger } from 'pino';
import type { DNSResolver } from 'mailauth';
import type { Clock } from '../core/clock.ts';
import type { DmarcPublished } from '../core/facts.ts';
import { deliver, type RelaySettings } from './deliver.ts';
import { mailtoAddresses, verifyDestination, type Verification } from './destinations.ts';
import { composeReport, signReport, type Signer } from './mail.ts';
import type { DeliveryOutcome, ReportMetrics } from './metrics.ts';
import { Pacer } from './pacer.ts';
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
  const pacer = new Pacer(deps.settings.ratePerMinute);
  return {
    /** One run over every domain; errors of one domain are logged and do not stop the others. */
    async run(opts: RunOptions = {}): Promise<RunSummary> {
      const { store, clock, logger } = deps;
      const r: Run = { deps, pacer, signal: opts.signal, summary: { sent: 0, deferred: 0, failed: 0, refused: 0, uncertain: 0, generated: 0, busy: 0 } };
      let pending = 0;
      for (const domain of await store.domains()) {
        if (r.signal?.aborted) break;
        try {
          const now = clock.now();
          await closePeriods(store, domain, now, opts.closeOpen ?? false);
          for (const jobId of await store.jobs(domain, opts.ignoreBackoff ? Infinity : now)) await runJob(r, domain, jobId);
          pending += (await store.jobs(domain, Infinity)).length;
        } catch (err) {
          r.summary.deferred++;
          deps.metrics?.deliveries.inc({ outcome: 'deferred' });
          logger.error({ event: 'dmarc-report', domain, err: (err as Error).message }, 'DMARC report run failed for a domain; retried next run');
        }
      }
      deps.metrics?.pending.set(pending);
      return r.summary;
    },
  };
}

/** One sending run: what it uses, and the summary it fills. */
interface Run {
  readonly deps: SenderDeps;
  readonly pacer: Pacer;
  readonly signal: AbortSignal | undefined;
  readonly summary: RunSummary;
}

async function closePeriods(store: ReportStore, domain: string, now: number, closeOpen: boolean): Promise<void> {
  for (const p of await store.openPeriods(domain)) {
    if (p.periodEnd <= now) {
      // Ended: closed once the grace is over, `--now` included (only the open period is cut
      // early): messages decided at its last moment may still be on their way to the store.
      if (p.periodEnd + CLOSE_GRACE_MS > now) continue;
      // Rows for a period whose job exists already (a node whose clock is behind, a late
      // write) make a job of their own: left alone, they would never be reported.
      const jobId = await store.load(domain, String(p.period)) ? `${p.period}-late-${now}` : String(p.period);
      await store.closePeriod({ domain, period: p.period, jobId, end: p.periodEnd, due: now, reopenAt: null });
    } else if (closeOpen && p.rows.size > 0) {
      // Closed early: this part ends now, the rest of the period becomes a later report.
      await store.closePeriod({ domain, period: p.period, jobId: `${p.period}-${now}`, end: now, due: now, reopenAt: now });
    }
  }
}

async function runJob(r: Run, domain: string, jobId: string): Promise<void> {
  const { store, clock } = r.deps;
  const token = await store.lock(domain, jobId, LOCK_TTL_MS);
  if (!token) {
    r.summary.busy++;
    return;
  }
  try {
    const job = await store.load(domain, jobId);
    if (!job || !job.policy) {
      await store.finish(domain, jobId, KEEP_FINISHED_MS);
      return;
    }
    if (await work(r, job, token)) {
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

/** Every (report, destination) of the job one step on; true when all have a final state. False also when the run was stopped. */
async function work(r: Run, job: JobData, token: string): Promise<boolean> {
  const published = JSON.parse(job.policy) as DmarcPublished;
  const destinations = mailtoAddresses(published.rua);
  const parts = await partsOf(r, job, token, published);
  const verified = new Map<string, Verification>();
  for (const [index, part] of parts.entries()) {
    for (const to of destinations) {
      if (!await step(r, { job, token, part, field: `${STATE_PREFIX}${index}:${to}`, to }, verified)) return false;
    }
  }
  // Finished when every (report, destination) has a final state.
  const after = await r.deps.store.load(job.domain, job.id);
  return parts.every((_, index) => destinations.every((to) => FINAL.test(after?.states.get(`${STATE_PREFIX}${index}:${to}`) ?? '')));
}

/** The job's reports, made once and stored, so every attempt sends the same report-ids. */
async function partsOf(r: Run, job: JobData, token: string, published: DmarcPublished): Promise<StoredPart[]> {
  if (job.parts) return JSON.parse(job.parts) as StoredPart[];
  const built = buildReports({ id: job.id, domain: job.domain, published, begin: job.begin, end: job.end, rows: job.rows }, r.deps.settings);
  const parts: StoredPart[] = built.map((b) => ({
    reportId: b.reportId, filename: b.filename, begin: b.begin, end: b.end, messages: b.messages, records: b.records, gzip: b.gzip.toString('base64'),
  }));
  if (!await r.deps.store.cas(job.domain, job.id, token, 'parts', [''], JSON.stringify(parts), LOCK_TTL_MS)) throw new Error('lost the job lock');
  r.summary.generated += parts.length;
  r.deps.metrics?.generated.inc(parts.length);
  return parts;
}

interface Delivery { readonly job: JobData; readonly token: string; readonly part: StoredPart; readonly field: string; readonly to: string }

/**
 * One (report, destination) one step along the state machine at the top of this file;
 * false when the run was stopped before its delivery.
 */
async function step(r: Run, d: Delivery, verified: Map<string, Verification>): Promise<boolean> {
  const { store, clock, settings } = r.deps;
  const { job, token, part, field, to } = d;
  const current = job.states.get(field) ?? '';
  const where = { domain: job.domain, report_id: part.reportId, destination: to };
  const cas = (next: string): Promise<boolean> => store.cas(job.domain, job.id, token, field, [current], next, LOCK_TTL_MS);
  if (FINAL.test(current)) return true;
  if (current.startsWith('sending:')) {
    // A node died (or lost its lock) after the mark: the report may have gone. Never resend.
    if (current !== `sending:${token}` && await cas(`uncertain:${current.slice(8)}`)) {
      count(r, 'uncertain', where, 'a previous attempt stopped after the message end without a recorded answer');
    }
    return true;
  }
  if (clock.now() - job.end > settings.maxAgeMs) {
    if (await cas('failed:expired')) count(r, 'failed', where, 'not delivered within maxAgeHours');
    return true;
  }
  const check = verified.get(to) ?? await verifyDestination(job.domain, to, r.deps.resolver);
  verified.set(to, check);
  if (check.result === 'refused') {
    if (await cas('refused')) count(r, 'refused', where, check.detail);
    return true;
  }
  if (check.result === 'temperror') {
    count(r, 'deferred', where, 'destination verification: DNS error');
    return true;
  }
  if (!await r.pacer.pace(r.signal)) return false;
  // the state stays the destination's; the mail goes where its record says (RFC 9990 §3 step 9)
  const result = await deliver({
    store, domain: job.domain, jobId: job.id, token, field, current, from: settings.email, to: check.to,
    message: await message(r.deps, job, part, check.to.join(', ')), relay: r.deps.relay, lockTtlMs: LOCK_TTL_MS, now: () => clock.now(),
  });
  const redirected = check.to.length !== 1 || check.to[0] !== to ? { delivered_to: check.to } : {};
  count(r, result.outcome, { ...where, ...redirected }, result.detail);
  return true;
}

async function message(deps: SenderDeps, job: JobData, part: StoredPart, to: string): Promise<Buffer> {
  const text = composeReport({
    from: deps.settings.email, to, domain: job.domain, submitter: submitterOf(deps.settings.email), orgName: deps.settings.orgName,
    part: { ...part, xml: '', gzip: Buffer.from(part.gzip, 'base64') }, now: deps.clock.now(),
  });
  return Buffer.from(deps.signer ? await signReport(text, deps.signer) : text, 'utf8');
}

function count(r: Run, outcome: DeliveryOutcome, fields: Record<string, unknown>, detail: string): void {
  r.summary[outcome]++;
  r.deps.metrics?.deliveries.inc({ outcome });
  const level = outcome === 'sent' ? 'info' : outcome === 'deferred' ? 'warn' : 'error';
  r.deps.logger[level]({ event: 'dmarc-report', outcome, ...fields, detail }, `DMARC report ${outcome}`);
}

export type Sender = ReturnType<typeof createSender>;
