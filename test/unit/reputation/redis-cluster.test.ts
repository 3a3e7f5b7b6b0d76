/**
 * The store suite against a three-master Redis Cluster of private servers. A script whose
 * KEYS spanned slots would fail with CROSSSLOT here, so passing proves the hash tags.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { redisConfigSchema } from '../../../src/reputation/config.ts';
import { bucketKey, ipSubject, netSubject, scoreKey } from '../../../src/reputation/keys.ts';
import { connectRedis, waitReady } from '../../../src/reputation/redis-connect.ts';
import { createRedisStore } from '../../../src/reputation/redis-store.ts';
import { keysWithPrefix, startRedisCluster, uniquePrefix, type RedisClusterProcess } from '../../harness/redis.ts';
import { HALF_LIFE_MS, req, SCORE_TTL_MS, storeBehaviour, T0 } from './store-suite.ts';

const score = { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS };

describe('redis store (three-node cluster)', () => {
  let cluster: RedisClusterProcess;
  let admin: Cluster;
  before(async () => {
    cluster = await startRedisCluster(3);
    admin = new Cluster(cluster.nodes.map((n) => ({ ...n })));
    await waitReady(admin, 5_000);
  });
  after(async () => {
    await admin.quit();
    await cluster.stop();
  });

  const openStore = async (prefix: string) => {
    const [seed, ...rest] = cluster.nodes;
    const client = connectRedis(redisConfigSchema.parse({
      url: `redis://${seed!.host}:${seed!.port}`,
      cluster: true,
      nodes: rest.map((n) => `${n.host}:${n.port}`),
    }));
    await waitReady(client, 5_000);
    return createRedisStore({ client, keyPrefix: prefix, score });
  };

  storeBehaviour(async () => {
    const store = await openStore(uniquePrefix('cluster'));
    return { store, close: () => store.close() };
  });

  it('keeps each subject in one slot, spreads subjects over the nodes, and gives every key a TTL', async (t) => {
    const prefix = uniquePrefix('cluster');
    const store = await openStore(prefix);
    t.after(() => store.close());
    const subjects = Array.from({ length: 12 }, (_, i) => ipSubject(`198.51.100.${i + 1}`));
    for (const s of subjects) {
      const r = await store.take([req('ip-messages', s, 1, 5), req('ip-recipients', s, 1, 5), req('net-messages', netSubject(s.id), 1, 50)], T0);
      assert.equal(r.allowed, true);
      await store.learn([{ subject: s, delta: 1 }], T0);
    }
    const slotsPerSubject = await Promise.all(subjects.map(async (s) => new Set(await Promise.all(
      [scoreKey(prefix, s), bucketKey(prefix, 'ip-messages', s), bucketKey(prefix, 'ip-recipients', s)]
        .map((k) => admin.cluster('KEYSLOT', k)),
    ))));
    for (const slots of slotsPerSubject) assert.equal(slots.size, 1);
    const perNode = await Promise.all(admin.nodes('master').map((n) => n.dbsize()));
    assert.equal(perNode.filter((n) => n > 0).length, 3, `keys per node: ${perNode.join(',')}`);
    const keys = await keysWithPrefix(admin, prefix);
    assert.equal(keys.length, 12 * 3 + 1);
    for (const k of keys) assert.ok(await admin.pttl(k) > 0, k);
  });
});
