/** The store suite against the shared Redis (REDIS_URL or 127.0.0.1:6379), one key prefix per test. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisConfigSchema } from '../../../src/reputation/config.ts';
import { ipSubject, netSubject, rcptSubject, domainSubject } from '../../../src/reputation/keys.ts';
import { connectRedis, waitReady } from '../../../src/reputation/redis-connect.ts';
import { createRedisStore } from '../../../src/reputation/redis-store.ts';
import { deletePrefix, keysWithPrefix, sharedRedisAvailable, sharedRedisUrl, uniquePrefix } from '../../harness/redis.ts';
import { HALF_LIFE_MS, req, SCORE_TTL_MS, storeBehaviour, T0 } from './store-suite.ts';

const available = await sharedRedisAvailable();
const score = { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS };

async function openStore(prefix: string, observer?: { storeError(op: string): void; storeLatency(op: string, s: number): void }) {
  const client = connectRedis(redisConfigSchema.parse({ url: sharedRedisUrl() }));
  await waitReady(client, 2_000);
  return createRedisStore({ client, keyPrefix: prefix, score, ...(observer ? { observer } : {}) });
}

describe('redis store (single server)', { skip: available ? false : `no Redis at ${sharedRedisUrl()}` }, () => {
  let admin: Redis;
  const prefixes: string[] = [];
  before(() => { admin = new Redis(sharedRedisUrl()); });
  after(async () => {
    for (const p of prefixes) await deletePrefix(admin, p);
    assert.deepEqual(await keysWithPrefix(admin, 'postern-test:redis-single:'), []);
    await admin.quit();
  });

  storeBehaviour(async () => {
    const prefix = uniquePrefix('redis-single');
    prefixes.push(prefix);
    const store = await openStore(prefix);
    return { store, close: () => store.close() };
  });

  it('writes readable keys, every one with a TTL', async (t) => {
    const prefix = uniquePrefix('redis-single');
    prefixes.push(prefix);
    const store = await openStore(prefix);
    t.after(() => store.close());
    const ip = ipSubject('203.0.113.7');
    const net = netSubject('203.0.113.7');
    await store.take([req('ip-messages', ip, 1, 5), req('net-messages', net, 1, 5), req('rcpt-messages', rcptSubject('a{b}@example.com'), 1, 5)], T0);
    await store.learn([{ subject: ip, delta: 1 }, { subject: domainSubject('Example.COM'), delta: 1 }], T0);
    const keys = await keysWithPrefix(admin, prefix);
    assert.deepEqual(keys, [
      `${prefix}rep:{domain:example.com}`,
      `${prefix}rep:{ip:203.0.113.7}`,
      `${prefix}rl:{ip:203.0.113.7}:ip-messages`,
      `${prefix}rl:{net:203.0.113.0/24}:net-messages`,
      `${prefix}rl:{rcpt:a%7Bb%7D@example.com}:rcpt-messages`,
    ]);
    for (const key of keys) {
      const pttl = await admin.pttl(key);
      assert.ok(pttl > 0, `${key} has PTTL ${pttl}`);
    }
    assert.deepEqual(await admin.hgetall(`${prefix}rl:{ip:203.0.113.7}:ip-messages`), { tat: String(T0 + 1000), interval: '1000', burst: '5' });
    assert.ok(await admin.pttl(`${prefix}rep:{ip:203.0.113.7}`) > SCORE_TTL_MS - 60_000);
  });

  it('reports latency per operation and errors to the observer', async (t) => {
    const prefix = uniquePrefix('redis-single');
    prefixes.push(prefix);
    const seen: string[] = [];
    const store = await openStore(prefix, { storeError: (op) => seen.push(`error:${op}`), storeLatency: (op, s) => { if (s >= 0) seen.push(op); } });
    t.after(() => store.close());
    await store.take([req('ip-messages', ipSubject('192.0.2.1'), 1, 1)], T0);
    await store.scores([ipSubject('192.0.2.1')], T0);
    // A key of the wrong type makes the script fail inside Redis.
    await admin.set(`${prefix}rl:{ip:192.0.2.2}:ip-messages`, 'x', 'PX', 60_000);
    await assert.rejects(store.take([req('ip-messages', ipSubject('192.0.2.2'), 1, 1)], T0), /WRONGTYPE/);
    assert.deepEqual(seen, ['take', 'scores', 'error:take', 'take']);
    assert.equal(store.health().ok, false);
    await store.scores([ipSubject('192.0.2.1')], T0);
    assert.deepEqual(store.health(), { ok: true });
  });
});
