/**
 * Report data on one node without Redis: a SQLite file (node:sqlite) in reports.dmarc.stateDir,
 * so counters survive a restart and `postern reports send` (another process) works on the same
 * data as `serve`: SQLite's file locking serialises the two, and every transaction is short
 * and free of network I/O.
 *
 * Collection never touches the disk on the mail path: counts are buffered in memory and
 * written in one transaction every FLUSH_MS (and on close). A crash loses at most that much.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Clock } from '../core/clock.ts';
import type { CloseOp, CollectOp, JobData, OpenPeriod, ReportStore } from './store.ts';

const FLUSH_MS = 250;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS periods (domain TEXT NOT NULL, period INTEGER NOT NULL, period_end INTEGER NOT NULL,
  begin INTEGER NOT NULL, policy TEXT NOT NULL, PRIMARY KEY (domain, period));
CREATE TABLE IF NOT EXISTS counts (domain TEXT NOT NULL, period INTEGER NOT NULL, field TEXT NOT NULL,
  n INTEGER NOT NULL, PRIMARY KEY (domain, period, field));
CREATE TABLE IF NOT EXISTS jobs (domain TEXT NOT NULL, id TEXT NOT NULL, begin INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  policy TEXT NOT NULL, due INTEGER, expires INTEGER, PRIMARY KEY (domain, id));
CREATE TABLE IF NOT EXISTS job_counts (domain TEXT NOT NULL, id TEXT NOT NULL, field TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (domain, id, field));
CREATE TABLE IF NOT EXISTS job_fields (domain TEXT NOT NULL, id TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (domain, id, field));
CREATE TABLE IF NOT EXISTS locks (domain TEXT NOT NULL, id TEXT NOT NULL, token TEXT NOT NULL, expires INTEGER NOT NULL,
  PRIMARY KEY (domain, id));
`;

interface Pending { op: CollectOp; n: number }

export interface LocalReportStoreOptions {
  readonly dir: string;
  readonly clock: Clock;
  /** Called when a flush fails (the counts stay buffered for the next one). */
  readonly onError?: (err: unknown) => void;
}

export function createLocalReportStore(opts: LocalReportStoreOptions): ReportStore {
  return new SqliteReportStore(opts);
}

class SqliteReportStore implements ReportStore {
  readonly #db: DatabaseSync;
  readonly #opts: LocalReportStoreOptions;
  readonly #upsertPeriod: StatementSync;
  readonly #addCount: StatementSync;
  readonly #timer: NodeJS.Timeout;
  #buffer = new Map<string, Pending>();

  constructor(opts: LocalReportStoreOptions) {
    this.#opts = opts;
    fs.mkdirSync(opts.dir, { recursive: true });
    this.#db = new DatabaseSync(path.join(opts.dir, 'dmarc-reports.sqlite'), { timeout: 2_000 });
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    this.#db.exec(SCHEMA);
    this.#upsertPeriod = this.#q(`INSERT INTO periods (domain, period, period_end, begin, policy) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (domain, period) DO UPDATE SET policy = excluded.policy`);
    this.#addCount = this.#q(`INSERT INTO counts (domain, period, field, n) VALUES (?, ?, ?, ?)
      ON CONFLICT (domain, period, field) DO UPDATE SET n = n + excluded.n`);
    this.#timer = setInterval(() => this.#flush(), FLUSH_MS);
    this.#timer.unref();
  }

  collect(op: CollectOp): Promise<void> {
    const key = `${op.domain}\n${op.period}\n${op.field}`;
    const cur = this.#buffer.get(key);
    this.#buffer.set(key, { op, n: (cur?.n ?? 0) + 1 });
    return Promise.resolve();
  }

  domains(): Promise<string[]> {
    this.#flush();
    const rows = this.#q('SELECT domain FROM periods UNION SELECT domain FROM jobs WHERE due IS NOT NULL ORDER BY 1').all() as Array<{ domain: string }>;
    return Promise.resolve(rows.map((r) => r.domain));
  }

  openPeriods(domain: string): Promise<OpenPeriod[]> {
    this.#flush();
    const periods = this.#q('SELECT period, period_end, begin, policy FROM periods WHERE domain = ? ORDER BY period').all(domain) as
      Array<{ period: number; period_end: number; begin: number; policy: string }>;
    return Promise.resolve(periods.map((p): OpenPeriod => ({
      period: p.period, periodEnd: p.period_end, begin: p.begin, policy: p.policy,
      rows: new Map((this.#q('SELECT field, n FROM counts WHERE domain = ? AND period = ?').all(domain, p.period) as Array<{ field: string; n: number }>)
        .map((r) => [r.field, r.n])),
    })));
  }

  closePeriod(op: CloseOp): Promise<boolean> {
    this.#flush();
    const q = (sql: string): StatementSync => this.#q(sql);
    return Promise.resolve(this.#tx(() => {
      if (q('SELECT 1 FROM jobs WHERE domain = ? AND id = ?').get(op.domain, op.jobId)) return false;
      const p = q('SELECT begin, policy FROM periods WHERE domain = ? AND period = ?').get(op.domain, op.period) as { begin: number; policy: string } | undefined;
      const has = Boolean(q('SELECT 1 FROM counts WHERE domain = ? AND period = ? LIMIT 1').get(op.domain, op.period));
      if (has && p) {
        q('INSERT INTO jobs (domain, id, begin, end_ms, policy, due) VALUES (?, ?, ?, ?, ?, ?)').run(op.domain, op.jobId, p.begin, op.end, p.policy, op.due);
        q('INSERT INTO job_counts (domain, id, field, n) SELECT domain, ?, field, n FROM counts WHERE domain = ? AND period = ?').run(op.jobId, op.domain, op.period);
      }
      q('DELETE FROM counts WHERE domain = ? AND period = ?').run(op.domain, op.period);
      if (op.reopenAt === null) q('DELETE FROM periods WHERE domain = ? AND period = ?').run(op.domain, op.period);
      else q('UPDATE periods SET begin = ? WHERE domain = ? AND period = ?').run(op.reopenAt, op.domain, op.period);
      return has && Boolean(p);
    }));
  }

  jobs(domain: string, at: number): Promise<string[]> {
    const rows = this.#q('SELECT id FROM jobs WHERE domain = ? AND due IS NOT NULL AND due <= ? ORDER BY due').all(domain, Number.isFinite(at) ? at : Number.MAX_SAFE_INTEGER) as Array<{ id: string }>;
    return Promise.resolve(rows.map((r) => r.id));
  }

  lock(domain: string, id: string, ttlMs: number): Promise<string | null> {
    const token = randomBytes(12).toString('hex');
    return Promise.resolve(this.#tx(() => {
      const held = this.#q('SELECT expires FROM locks WHERE domain = ? AND id = ?').get(domain, id) as { expires: number } | undefined;
      if (held && held.expires > this.#now()) return null;
      this.#q('INSERT OR REPLACE INTO locks (domain, id, token, expires) VALUES (?, ?, ?, ?)').run(domain, id, token, this.#now() + ttlMs);
      return token;
    }));
  }

  renew(domain: string, id: string, token: string, ttlMs: number): Promise<boolean> {
    const r = this.#q('UPDATE locks SET expires = ? WHERE domain = ? AND id = ? AND token = ? AND expires > ?').run(this.#now() + ttlMs, domain, id, token, this.#now());
    return Promise.resolve(Number(r.changes) === 1);
  }

  unlock(domain: string, id: string, token: string): Promise<void> {
    this.#q('DELETE FROM locks WHERE domain = ? AND id = ? AND token = ?').run(domain, id, token);
    return Promise.resolve();
  }

  load(domain: string, id: string): Promise<JobData | null> {
    const job = this.#q('SELECT begin, end_ms, policy FROM jobs WHERE domain = ? AND id = ?').get(domain, id) as { begin: number; end_ms: number; policy: string } | undefined;
    if (!job) return Promise.resolve(null);
    const counts = this.#q('SELECT field, n FROM job_counts WHERE domain = ? AND id = ?').all(domain, id) as Array<{ field: string; n: number }>;
    const fields = this.#q('SELECT field, value FROM job_fields WHERE domain = ? AND id = ?').all(domain, id) as Array<{ field: string; value: string }>;
    return Promise.resolve({
      id, domain, begin: job.begin, end: job.end_ms, policy: job.policy,
      rows: new Map(counts.map((c) => [c.field, c.n])),
      parts: fields.find((f) => f.field === 'parts')?.value ?? null,
      states: new Map(fields.filter((f) => f.field.startsWith('s:')).map((f) => [f.field, f.value])),
    } satisfies JobData);
  }

  cas(domain: string, id: string, token: string, name: string, allowed: readonly string[], value: string, ttlMs: number): Promise<boolean> {
    return Promise.resolve(this.#tx(() => {
      if (token && !this.#holds(domain, id, token)) return false;
      if (token && ttlMs > 0) this.#q('UPDATE locks SET expires = ? WHERE domain = ? AND id = ?').run(this.#now() + ttlMs, domain, id);
      const current = this.#field(domain, id, name) ?? '';
      const ok = allowed.some((a) => a === current || (a.endsWith('*') && current !== '' && current.startsWith(a.slice(0, -1))));
      if (ok) this.#q('INSERT OR REPLACE INTO job_fields (domain, id, field, value) VALUES (?, ?, ?, ?)').run(domain, id, name, value);
      return ok;
    }));
  }

  schedule(domain: string, id: string, at: number): Promise<void> {
    this.#q('UPDATE jobs SET due = ? WHERE domain = ? AND id = ? AND due IS NOT NULL').run(at, domain, id);
    return Promise.resolve();
  }

  finish(domain: string, id: string, keepMs: number): Promise<void> {
    this.#tx(() => {
      this.#q('UPDATE jobs SET due = NULL, expires = ? WHERE domain = ? AND id = ?').run(this.#now() + keepMs, domain, id);
      // Finished jobs past their keep time go, with everything they hold.
      for (const table of ['job_counts', 'job_fields', 'locks']) {
        this.#q(`DELETE FROM ${table} WHERE (domain, id) IN (SELECT domain, id FROM jobs WHERE expires < ?)`).run(this.#now());
      }
      this.#q('DELETE FROM jobs WHERE expires < ?').run(this.#now());
    });
    return Promise.resolve();
  }

  durable(): Promise<boolean> {
    return Promise.resolve(true); // one file, committed transactions
  }

  close(): Promise<void> {
    clearInterval(this.#timer);
    this.#flush();
    this.#db.close();
    return Promise.resolve();
  }

  /** Writes the buffered counts in one transaction. */
  #flush(): void {
    if (this.#buffer.size === 0) return;
    const batch = this.#buffer;
    this.#buffer = new Map();
    try {
      this.#tx(() => {
        for (const { op, n } of batch.values()) {
          this.#upsertPeriod.run(op.domain, op.period, op.periodEnd, op.period, op.policy);
          this.#addCount.run(op.domain, op.period, op.field, n);
        }
      });
    } catch (err) {
      // Busy or failing disk: keep the counts for the next flush rather than lose them.
      for (const [key, p] of batch) {
        const cur = this.#buffer.get(key);
        this.#buffer.set(key, cur ? { op: cur.op, n: cur.n + p.n } : p);
      }
      this.#opts.onError?.(err);
    }
  }

  #tx<T>(work: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = work();
      this.#db.exec('COMMIT');
      return out;
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  #q(sql: string): StatementSync {
    return this.#db.prepare(sql);
  }

  #now(): number {
    return this.#opts.clock.now();
  }

  #field(domain: string, id: string, name: string): string | undefined {
    return (this.#q('SELECT value FROM job_fields WHERE domain = ? AND id = ? AND field = ?').get(domain, id, name) as { value: string } | undefined)?.value;
  }

  #holds(domain: string, id: string, token: string): boolean {
    return Boolean(this.#q('SELECT 1 FROM locks WHERE domain = ? AND id = ? AND token = ? AND expires > ?').get(domain, id, token, this.#now()));
  }
}
