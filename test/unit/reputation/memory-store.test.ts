import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipSubject } from '../../../src/reputation/keys.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { HALF_LIFE_MS, req, SCORE_TTL_MS, storeBehaviour, T0 } from './store-suite.ts';

const score = { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS };

describe('memory store', () => {
  storeBehaviour(() => {
    const store = createMemoryStore({ score });
    return Promise.resolve({ store, close: () => store.close() });
  });

  it('stays bounded: the least recently used bucket is dropped (it reads as full)', async () => {
    const store = createMemoryStore({ score, maxBuckets: 2 });
    const a = [req('ip-messages', ipSubject('192.0.2.1'), 1, 1)];
    assert.equal((await store.take(a, T0)).allowed, true);
    assert.equal((await store.take(a, T0)).allowed, false);
    await store.take([req('ip-messages', ipSubject('192.0.2.2'), 1, 1)], T0);
    await store.take([req('ip-messages', ipSubject('192.0.2.3'), 1, 1)], T0);
    assert.equal((await store.take(a, T0)).allowed, true);
  });

  it('forgets a score after its TTL, measured in the injected time', async () => {
    const store = createMemoryStore({ score });
    const ip = ipSubject('192.0.2.1');
    await store.learn([{ subject: ip, delta: 5 }], T0);
    assert.equal((await store.scores([ip], T0 + SCORE_TTL_MS - 1))[0]!.samples, 1);
    assert.deepEqual(await store.scores([ip], T0 + SCORE_TTL_MS + 1), [{ subject: ip, score: 0, samples: 0, updatedAt: 0 }]);
  });
});
