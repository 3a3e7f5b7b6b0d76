/**
 * The sending run inside `serve`: every few minutes, on the one node that holds the runner
 * lock (so pacing holds for the whole fleet), close the ended periods and work the due jobs.
 * Per-job locks keep even overlapping runs (a CLI `reports send`) from sending twice.
 */
import type { Logger } from 'pino';
import type { Sender } from './sender.ts';
import type { ReportStore } from './store.ts';

export const RUNNER = { domain: '_runner', job: 'runner' } as const;
const STOP_WAIT_MS = 5_000;

export interface Scheduler {
  /** Stops the timer, ends a run in progress after its current delivery, and waits for it. */
  stop(): Promise<void>;
}

export function startScheduler(deps: { sender: Sender; store: ReportStore; logger: Logger; intervalMs: number }): Scheduler {
  // Held for the whole run and renewed while it lasts; long enough that a stalled event loop keeps it.
  const lockTtl = Math.max(deps.intervalMs * 2, 60_000);
  let running: Promise<void> | null = null;
  let stopped = false;
  const abort = new AbortController();

  const once = async (): Promise<void> => {
    const token = await deps.store.lock(RUNNER.domain, RUNNER.job, lockTtl);
    if (!token) return; // another node runs now
    const keep = setInterval(() => void deps.store.renew(RUNNER.domain, RUNNER.job, token, lockTtl).catch(() => undefined), deps.intervalMs / 2);
    try {
      const summary = await deps.sender.run({ signal: abort.signal });
      // every run is a line (debug when it did nothing): what a test waits on instead of sleeping
      const level = Object.values(summary).some((n) => n > 0) ? 'info' : 'debug';
      deps.logger[level]({ event: 'dmarc-report-run', ...summary }, 'DMARC report run');
    } finally {
      clearInterval(keep);
      await deps.store.unlock(RUNNER.domain, RUNNER.job, token).catch(() => undefined);
    }
  };
  const tick = (): void => {
    if (running || stopped) return;
    running = once()
      .catch((err: unknown) => deps.logger.error({ err: (err as Error).message }, 'DMARC report run failed; retried at the next one'))
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, deps.intervalMs);
  timer.unref();
  // A first run soon after start, spread over nodes started together (never later than the interval).
  const first = setTimeout(tick, Math.min(deps.intervalMs, 5_000 + Math.random() * 10_000));
  first.unref();

  return {
    async stop() {
      stopped = true;
      abort.abort();
      clearInterval(timer);
      clearTimeout(first);
      // A delivery in flight may wait on a slow relay: shutdown waits a little, not for its timeout.
      // Left unfinished it is found as "sending" by the next run (uncertain, never resent).
      await Promise.race([running, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
    },
  };
}
