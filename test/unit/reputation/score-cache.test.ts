/** Scores read at connect are reused for scoreCacheMs: one store round trip per step for a busy sender. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rateLimitsConfigSchema, reputationConfigSchema } from '../../../src/reputation/config.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { createReputation } from '../../../src/reputation/reputation.ts';
import { scoreParams } from '../../../src/reputation/store.ts';
import type { RateStore } from '../../../src/reputation/types.ts';

describe('score cache', () => {
  const setup = (scoreCacheMs: number): { calls: () => number; last: () => string[]; rep: ReturnType<typeof createReputation> } => {
    const reputation = reputationConfigSchema.parse({});
    const inner = createMemoryStore({ score: scoreParams(reputation) });
    let n = 0;
    let last: string[] = [];
    const store: RateStore = { ...inner, scores: (subjects, now) => { n++; last = subjects.map((x) => `${x.kind}:${x.id}`); return inner.scores(subjects, now); } };
    return { calls: () => n, last: () => last, rep: createReputation({ store, config: { reputation, rateLimits: rateLimitsConfigSchema.parse({}) }, scoreCacheMs }) };
  };

  it('reads scores once within the window and again after it', async () => {
    const { calls, last, rep } = setup(30_000);
    await rep.connect('192.0.2.1', 1_000);
    await rep.connect('192.0.2.1', 20_000);
    assert.equal(calls(), 1);
    await rep.connect('192.0.2.1', 31_001);
    assert.equal(calls(), 2);
    await rep.connect('192.0.2.2', 31_002); // another address, same /24: only the IP is read
    assert.equal(calls(), 3);
    assert.deepEqual(last(), ['ip:192.0.2.2']);
  });

  it('0 reads every time', async () => {
    const { calls, rep } = setup(0);
    await rep.connect('192.0.2.1', 1_000);
    await rep.connect('192.0.2.1', 1_001);
    assert.equal(calls(), 2);
  });
});
