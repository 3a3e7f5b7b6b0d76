/**
 * The in-serve scheduler: it runs the sender periodically, only on the node holding the runner
 * lock (two schedulers on one store never run at once, so pacing holds fleet-wide), and stop()
 * ends it without waiting for the next tick.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../../../src/core/clock.ts';
import { createLocalReportStore } from '../../../src/reports/local-store.ts';
import { startScheduler } from '../../../src/reports/scheduler.ts';
import type { RunSummary, Sender } from '../../../src/reports/sender.ts';
import { eventually } from '../../harness/wait.ts';

const empty: RunSummary = { sent: 0, deferred: 0, failed: 0, refused: 0, uncertain: 0, generated: 0, busy: 0 };

describe('report scheduler', () => {
  it('runs the sender again and again, never on two nodes at once, and stops', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-sched-'));
    const stores = [createLocalReportStore({ dir, clock: systemClock }), createLocalReportStore({ dir, clock: systemClock })];
    let active = 0;
    let overlap = 0;
    let runs = 0;
    const sender: Sender = {
      run: async () => {
        active++;
        if (active > 1) overlap++;
        runs++;
        await new Promise((r) => setTimeout(r, 30)); // longer than a tick: the other node tries meanwhile
        active--;
        return empty;
      },
    };
    const logger = pino({ level: 'silent' });
    const schedulers = stores.map((store) => startScheduler({ sender, store, logger, intervalMs: 10 }));
    try {
      await eventually(() => runs >= 6, 'six runs');
      assert.equal(overlap, 0, 'two nodes ran at the same time');
    } finally {
      await Promise.all(schedulers.map((s) => s.stop()));
      const after = runs;
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(runs, after, 'no run after stop()');
      for (const s of stores) await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
