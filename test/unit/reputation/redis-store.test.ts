/** The store suite against the shared Redis (REDIS_URL or 127.0.0.1:6379), one key prefix per test. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisConfigSchema } from '../../../src/reputation/config.ts';
import { ipSubject, netSubject, rcptSubject, domainSubject } from '../../../src/reputation/keys.ts';
import { connectRedis, waitReady } from '../../../src/reputation/redis-connect.ts';
import { createRedisStore } from '../../../src/reputation/redis-store.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { deletePrefix, keysWithPrefix, sharedRedisAvailable, sharedRedisUrl, startRedisServer, uniquePrefix } from '../../harness/redis.ts';
import { HALF_LIFE_MS, req, SCORE_TTL_MS, storeBehaviour, T0 } from './store-suite.ts';

const available = await sharedRedisAvailable();
const score = { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS };

async function openStore(prefix: string, observer?: { storeError(op: string): void; storeLatency(op: string, s: number): void }, url = sharedRedisUrl()) {
  const client = connectRedis(redisConfigSchema.parse({ url }));
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

/** EVALSHA and EVAL calls the server has run so far. */
async function scriptCalls(admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats');
  return ['evalsha', 'eval'].reduce((n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0);
}

/** A store on a private redis-server (exact command counts), closed with the test. */
async function privateStore(t: { after(fn: () => unknown): void }, prefix: string) {
  const server = await startRedisServer();
  t.after(() => server.stop());
  const admin = new Redis(server.url);
  t.after(() => admin.quit());
  const store = await openStore(prefix, undefined, server.url);
  t.after(() => store.close());
  return { admin, store };
}

describe('redis store: round trips', () => {
  it('one script call per SMTP step on a single server: the step\'s buckets in one take, atomic', async (t) => {
    const { admin, store } = await privateStore(t, 'postern-test:one-call:');
    const ip = ipSubject('198.51.100.1');
    const step = [req('ip-recipients', ip, 1, 2), req('net-recipients', netSubject('198.51.100.1'), 1, 5), req('rcpt-messages', rcptSubject('a@example.net'), 1, 5)];
    let before = await scriptCalls(admin);
    assert.equal((await store.take(step, T0)).allowed, true);
    assert.equal(await scriptCalls(admin) - before, 1);
    assert.equal((await store.take(step, T0)).allowed, true);
    before = await scriptCalls(admin);
    const denied = await store.take(step, T0);
    assert.equal(await scriptCalls(admin) - before, 1, 'a denial needs no release call: nothing was taken');
    assert.deepEqual(denied.allowed ? null : denied.limitedBy, 'ip-recipients');
    const { buckets } = await store.inspect(netSubject('198.51.100.1'), T0);
    assert.equal(buckets[0]?.tokens, 3, 'the network kept the tokens the denied step did not take');
  });

  it('learning of one moment is one script call per subject, and ends where one call per outcome would', async (t) => {
    const { admin, store } = await privateStore(t, 'postern-test:learn-batch:');
    const memory = createMemoryStore({ score });
    const ip = ipSubject('198.51.100.1');
    const net = netSubject('198.51.100.1');
    // Outcomes at different times, and enough of them to hit the bound and come back from it:
    // the order of clamping matters, so a batch must apply them one by one.
    const outcomes = Array.from({ length: 40 }, (_, i) => ({ now: T0 + i * 60_000, updates: [{ subject: ip, delta: i < 30 ? 9 : -7 }, { subject: net, delta: 1 }] }));
    const before = await scriptCalls(admin);
    await Promise.all(outcomes.map((o) => store.learn(o.updates, o.now)));
    assert.equal(await scriptCalls(admin) - before, 2, 'one call for the IP, one for its network');
    for (const o of outcomes) await memory.learn(o.updates, o.now);
    const at = T0 + 60 * 60_000;
    assert.deepEqual(await store.scores([ip, net], at), await memory.scores([ip, net], at));
    assert.equal((await store.scores([ip], at))[0]!.samples, 40);
  });
});
