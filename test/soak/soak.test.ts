/**
 * The short fault soak of the suite: every fault phase once, briefly (make soak runs minutes).
 * Nothing is asserted on time: the books must balance exactly, no session may stay open, RSS
 * must come back near its baseline and the gateway must never restart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PHASES } from './faults.ts';
import { runSoak } from './soak.ts';

void describe('fault soak (short)', () => {
  void it('through backend kills, hangs, 4xx/5xx at every step, mid-DATA drops, Redis SIGKILL/SIGSTOP and DNS timeouts/garbage: every 250 is one identical copy, nothing stray, no session left, no restart', { timeout: 300_000 }, async (t) => {
    const phaseMs = 1_500;
    const calmMs = 600;
    const soak = await runSoak({
      // one pass over every phase
      seconds: (PHASES.length * (phaseMs + calmMs)) / 1000 - 1, clients: 8, phaseMs, calmMs, warmMessages: 40, abortRate: 0.02,
    });
    for (const line of soak.report) t.diagnostic(line);
    assert.deepEqual(soak.problems, []);
    // the run must have exercised what it claims: deliveries, refusals and the RFC 1047 window
    assert.ok(soak.books.deliveredOnce > 100, `only ${soak.books.deliveredOnce} messages delivered`);
    assert.ok((soak.books.byFinal.get('refused') ?? 0) > 0, 'no 5xx seen: the backend faults did not reach the clients');
  });
});
