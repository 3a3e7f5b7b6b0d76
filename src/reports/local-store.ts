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
import { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../core/clock.ts';
import type { CollectOp, JobData, OpenPeriod, ReportStore } from './store.ts';

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
  fs.mkdirSync(opts.dir, { recursive: true });
  const db = new DatabaseSync(path.join(opts.dir, 'dmarc-reports.sqlite'), { timeout: 2_000 });
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
  db.exec(SCHEMA);
  const now = (): number => opts.clock.now();
  let buffer = new Map<string, Pending>();

  const tx = <T>(work: () => T): T => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const out = work();
      db.exec('COMMIT');
      return out;
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  };
  const q = (sql: string) => db.prepare(sql);
  const upsertPeriod = q(`INSERT INTO periods (domain, period, period_end, begin, policy) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (domain, period) DO UPDATE SET policy = excluded.policy`);
  const addCount = q(`INSERT INTO counts (domain, period, field, n) VALUES (?, ?, ?, ?)
    ON CONFLICT (domain, period, field) DO UPDATE SET n = n + excluded.n`);

  const flush = (): void => {
    if (buffer.size === 0) return;
    const batch = buffer;
    buffer = new Map();
    try {
      tx(() => {
        for (const { op, n } of batch.values()) {
          upsertPeriod.run(op.domain, op.period, op.periodEnd, op.period, op.policy);
          addCount.run(op.domain, op.period, op.field, n);
        }
      });
    } catch (err) {
      // Busy or failing disk: keep the counts for the next flush rather than lose them.
      for (const [key, p] of batch) {
        const cur = buffer.get(key);
        buffer.set(key, cur ? { op: cur.op, n: cur.n + p.n } : p);
      }
      opts.onError?.(err);
    }
  };
  const timer = setInterval(flush, FLUSH_MS);
  timer.unref();

  const field = (domain: string, id: string, name: string): string | undefined =>
    (q('SELECT value FROM job_fields WHERE domain = ? AND id = ? AND field = ?').get(domain, id, name) as { value: string } | undefined)?.value;
  const holds = (domain: string, id: string, token: string): boolean =>
    Boolean(q('SELECT 1 FROM locks WHERE domain = ? AND id = ? AND token = ? AND expires > ?').get(domain, id, token, now()));

  return {
    collect(op) {
      const key = `${op.domain}\n${op.period}\n${op.field}`;
      const cur = buffer.get(key);
      buffer.set(key, { op, n: (cur?.n ?? 0) + 1 });
      return Promise.resolve();
    },
    domains() {
      flush();
      const rows = q('SELECT domain FROM periods UNION SELECT domain FROM jobs WHERE due IS NOT NULL ORDER BY 1').all() as Array<{ domain: string }>;
      return Promise.resolve(rows.map((r) => r.domain));
    },
    openPeriods(domain) {
      flush();
      const periods = q('SELECT period, period_end, begin, policy FROM periods WHERE domain = ? ORDER BY period').all(domain) as
        Array<{ period: number; period_end: number; begin: number; policy: string }>;
      return Promise.resolve(periods.map((p): OpenPeriod => ({
        period: p.period, periodEnd: p.period_end, begin: p.begin, policy: p.policy,
        rows: new Map((q('SELECT field, n FROM counts WHERE domain = ? AND period = ?').all(domain, p.period) as Array<{ field: string; n: number }>)
          .map((r) => [r.field, r.n])),
      })));
    },
    closePeriod(op) {
      flush();
      return Promise.resolve(tx(() => {
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
    },
    jobs(domain, at) {
      const rows = q('SELECT id FROM jobs WHERE domain = ? AND due IS NOT NULL AND due <= ? ORDER BY due').all(domain, Number.isFinite(at) ? at : Number.MAX_SAFE_INTEGER) as Array<{ id: string }>;
      return Promise.resolve(rows.map((r) => r.id));
    },
    lock(domain, id, ttlMs) {
      const token = randomBytes(12).toString('hex');
      return Promise.resolve(tx(() => {
        const held = q('SELECT expires FROM locks WHERE domain = ? AND id = ?').get(domain, id) as { expires: number } | undefined;
        if (held && held.expires > now()) return null;
        q('INSERT OR REPLACE INTO locks (domain, id, token, expires) VALUES (?, ?, ?, ?)').run(domain, id, token, now() + ttlMs);
        return token;
      }));
    },
    renew(domain, id, token, ttlMs) {
      const r = q('UPDATE locks SET expires = ? WHERE domain = ? AND id = ? AND token = ? AND expires > ?').run(now() + ttlMs, domain, id, token, now());
      return Promise.resolve(Number(r.changes) === 1);
    },
    unlock(domain, id, token) {
      q('DELETE FROM locks WHERE domain = ? AND id = ? AND token = ?').run(domain, id, token);
      return Promise.resolve();
    },
    load(domain, id) {
      const job = q('SELECT begin, end_ms, policy FROM jobs WHERE domain = ? AND id = ?').get(domain, id) as { begin: number; end_ms: number; policy: string } | undefined;
      if (!job) return Promise.resolve(null);
      const counts = q('SELECT field, n FROM job_counts WHERE domain = ? AND id = ?').all(domain, id) as Array<{ field: string; n: number }>;
      const fields = q('SELECT field, value FROM job_fields WHERE domain = ? AND id = ?').all(domain, id) as Array<{ field: string; value: string }>;
      return Promise.resolve({
        id, domain, begin: job.begin, end: job.end_ms, policy: job.policy,
        rows: new Map(counts.map((c) => [c.field, c.n])),
        parts: fields.find((f) => f.field === 'parts')?.value ?? null,
        states: new Map(fields.filter((f) => f.field.startsWith('s:')).map((f) => [f.field, f.value])),
      } satisfies JobData);
    },
    cas(domain, id, token, name, allowed, value, ttlMs) {
      return Promise.resolve(tx(() => {
        if (token && !holds(domain, id, token)) return false;
        if (token && ttlMs > 0) q('UPDATE locks SET expires = ? WHERE domain = ? AND id = ?').run(now() + ttlMs, domain, id);
        const current = field(domain, id, name) ?? '';
        const ok = allowed.some((a) => a === current || (a.endsWith('*') && current !== '' && current.startsWith(a.slice(0, -1))));
        if (ok) q('INSERT OR REPLACE INTO job_fields (domain, id, field, value) VALUES (?, ?, ?, ?)').run(domain, id, name, value);
        return ok;
      }));
    },
    schedule(domain, id, at) {
      q('UPDATE jobs SET due = ? WHERE domain = ? AND id = ? AND due IS NOT NULL').run(at, domain, id);
      return Promise.resolve();
    },
    finish(domain, id, keepMs) {
      tx(() => {
        q('UPDATE jobs SET due = NULL, expires = ? WHERE domain = ? AND id = ?').run(now() + keepMs, domain, id);
        // Finished jobs past their keep time go, with everything they hold.
        for (const table of ['job_counts', 'job_fields', 'locks']) {
          q(`DELETE FROM ${table} WHERE (domain, id) IN (SELECT domain, id FROM jobs WHERE expires < ?)`).run(now());
        }
        q('DELETE FROM jobs WHERE expires < ?').run(now());
      });
      return Promise.resolve();
    },
    durable() {
      return Promise.resolve(true); // one file, committed transactions
    },
    close() {
      clearInterval(timer);
      flush();
      db.close();
      return Promise.resolve();
    },
  };
}
