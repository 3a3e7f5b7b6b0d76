/**
 * Where report data lives between the messages and the report: counters per (report domain,
 * period, row), then report jobs with a per-destination delivery state. Two implementations
 * with the same primitives: Redis (redis-store.ts, shared by every node) and SQLite
 * (local-store.ts, one node, survives a restart). The state machine on top is in sender.ts.
 */

export interface OpenPeriod {
  /** Period start and end, ms since the epoch (UTC-aligned). */
  readonly period: number;
  readonly periodEnd: number;
  /** The period start, or the time an earlier part was closed early (reports send --now). */
  readonly begin: number;
  /** Published policy JSON of the last message counted; '' when none yet. */
  readonly policy: string;
  readonly rows: ReadonlyMap<string, number>;
}

export interface JobData {
  readonly id: string;
  readonly domain: string;
  readonly begin: number;
  readonly end: number;
  readonly policy: string;
  readonly rows: ReadonlyMap<string, number>;
  /** Generated reports (JSON), once made; the same bytes go out on every attempt. */
  readonly parts: string | null;
  /** Delivery states by field ("s:<part>:<destination>"), see sender.ts. */
  readonly states: ReadonlyMap<string, string>;
}

export interface CollectOp {
  readonly domain: string;
  readonly period: number;
  readonly periodEnd: number;
  readonly field: string;
  readonly policy: string;
}

export interface CloseOp {
  readonly domain: string;
  readonly period: number;
  readonly jobId: string;
  /** End of the job's date range. */
  readonly end: number;
  /** When the job is first due. */
  readonly due: number;
  /** null: the period ended; a time: closed early, the period goes on collecting from then. */
  readonly reopenAt: number | null;
}

export interface ReportStore {
  /** One message: one atomic update. */
  collect(op: CollectOp): Promise<void>;
  /** Report domains with data or jobs (recently active ones). */
  domains(): Promise<string[]>;
  openPeriods(domain: string): Promise<OpenPeriod[]>;
  /** Moves a period's rows into a job; false when there was nothing to move or the job exists. */
  closePeriod(op: CloseOp): Promise<boolean>;
  /** Job ids of a domain due at `now` (all jobs when now is Infinity). */
  jobs(domain: string, now: number): Promise<string[]>;
  /** Takes the job's lock for ttlMs; returns the token, or null when another node holds it. */
  lock(domain: string, jobId: string, ttlMs: number): Promise<string | null>;
  /** Extends a lock still held; false when it was lost. */
  renew(domain: string, jobId: string, token: string, ttlMs: number): Promise<boolean>;
  unlock(domain: string, jobId: string, token: string): Promise<void>;
  load(domain: string, jobId: string): Promise<JobData | null>;
  /**
   * Compare-and-set of one job field. `token` non-empty: only while holding the lock (and the
   * lock is renewed for ttlMs). `allowed`: current values accepted ('' = absent, 'x*' = prefix).
   */
  cas(domain: string, jobId: string, token: string, field: string, allowed: readonly string[], value: string, ttlMs: number): Promise<boolean>;
  /** Next attempt time of a pending job. */
  schedule(domain: string, jobId: string, at: number): Promise<void>;
  /** Done: no more attempts; the job is kept `keepMs` so a late node still sees its states. */
  finish(domain: string, jobId: string, keepMs: number): Promise<void>;
  /** Makes sure the last write survives a failover (Redis WAIT where replicas exist); false when unsure. */
  durable(domain: string): Promise<boolean>;
  close(): Promise<void>;
}

export const STATE_PREFIX = 's:';
