import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reputationConfigSchema } from '../../../src/reputation/config.ts';
import { reputationReset, reputationShow } from '../../../src/reputation/cli.ts';
import { ipSubject, netSubject } from '../../../src/reputation/keys.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const reputation = reputationConfigSchema.parse({});

describe('postern reputation show / reset', () => {
  it('shows score, samples, tier and bucket levels of an IP and its network', async () => {
    const store = createMemoryStore({ score: { halfLifeMs: 3_600_000, ttlMs: 86_400_000 } });
    const ip = ipSubject('203.0.113.7');
    for (let i = 0; i < 6; i++) await store.learn([{ subject: ip, delta: 2.5 }, { subject: netSubject(ip.id), delta: 1 }], T0);
    await store.take([{ limiter: 'ip-messages', subject: ip, ratePerSecond: 1, burst: 200, cost: 20 }], T0);
    const out = await reputationShow(store, '203.0.113.7', { now: T0, reputation });
    assert.equal(out, [
      'ip:203.0.113.7   key postern:rep:{ip:203.0.113.7}',
      '  score    15.00  samples 6  updated 2025-01-02T03:04:05.000Z',
      '  tier     good',
      '  buckets  ip-messages 180.0/200',
      'net:203.0.113.0/24   key postern:rep:{net:203.0.113.0/24}',
      '  score    6.00  samples 6  updated 2025-01-02T03:04:05.000Z',
      '  tier     neutral',
      '  buckets  all full',
      '',
    ].join('\n'));
    const unknown = await reputationShow(store, 'Example.org', { now: T0, reputation, keyPrefix: 'x:' });
    assert.equal(unknown, [
      'domain:example.org   key x:rep:{domain:example.org}',
      '  score    0.00  samples 0  updated never',
      '  tier     neutral (fewer than 5 samples: counts as neutral)',
      '  buckets  all full',
      '',
    ].join('\n'));
  });

  it('resets exactly the subject named', async () => {
    const store = createMemoryStore({ score: { halfLifeMs: 3_600_000, ttlMs: 86_400_000 } });
    const ip = ipSubject('203.0.113.7');
    await store.learn([{ subject: ip, delta: -5 }, { subject: netSubject(ip.id), delta: -5 }], T0);
    await store.take([{ limiter: 'ip-connections', subject: ip, ratePerSecond: 1, burst: 5, cost: 1 }], T0);
    assert.equal(await reputationReset(store, '203.0.113.7'), 'ip:203.0.113.7: 2 keys deleted\n');
    assert.equal((await store.scores([netSubject(ip.id)], T0))[0]!.samples, 1);
    assert.equal(await reputationReset(store, '203.0.113.0/24'), 'net:203.0.113.0/24: 1 key deleted\n');
  });
});
