/**
 * The bounded fuzz run of the suite: a few hundred seeded inputs against a running gateway
 * (`make fuzz` runs a million). A failure prints fast-check's shrunk counterexample and the
 * seed to replay it with FUZZ_SEED.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runFuzz, summary } from './fuzz.ts';

void describe('fuzzing the gateway over real sockets (bounded, seeded)', () => {
  void it('SMTP sessions, raw byte streams, PROXY headers (trusted and untrusted peer) and hostile messages: no crash, no hang, no relaying, no 2xx for a forged p=reject From, a message without From or one whose first line starts with whitespace, nothing at the backend without a 250, no bare CR/LF relayed', async (t) => {
    const result = await runFuzz({ runs: 320, workers: 32, seed: 20261129 });
    for (const line of summary(result)) t.diagnostic(line);
    assert.deepEqual(result.problems, []);
    // the run reached what it is meant to check
    assert.ok(result.stats.delivered > 20, `only ${result.stats.delivered} message(s) delivered`);
    assert.ok(result.stats.forgedRefused > 5, `only ${result.stats.forgedRefused} message(s) to refuse reached the end of DATA`);
  });
});
