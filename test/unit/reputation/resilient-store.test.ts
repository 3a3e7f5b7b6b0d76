/**
 * Redis away: a private redis-server is killed mid-run and restarted on the same port, or
 * paused so commands time out. Fail-open keeps admitting (with local limits), fail-closed
 * refuses with storeUnavailable, and both recover by themselves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisConfigSchema } from '../../../src/reputation/config.ts';
import { ipSubject } from '../../../src/reputation/keys.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { connectRedis, waitReady } from '../../../src/reputation/redis-connect.ts';
import { createRedisStore, type RedisStore } from '../../../src/reputation/redis-store.ts';
import { createResilientStore } from '../../../src/reputation/resilient-store.ts';
import { createStoreFromConfig } from '../../../src/reputation/store.ts';
import { reputationConfigSchema } from '../../../src/reputation/config.ts';
import { startRedisServer, type RedisProcess } from '../../harness/redis.ts';
import { eventually, nextEvent } from '../../harness/wait.ts';
import { HALF_LIFE_MS, req, SCORE_TTL_MS, T0 } from './store-suite.ts';

const score = { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS };
const ip = ipSubject('192.0.2.10');
const r = [req('ip-messages', ip, 1, 2)];

async function open(server: RedisProcess, failMode: 'open' | 'closed', commandTimeoutMs = 500) {
  const client = connectRedis(redisConfigSchema.parse({ url: server.url, commandTimeoutMs }), { reconnectMaxMs: 50 });
  await waitReady(client, 2_000);
  const primary = createRedisStore({ client, keyPrefix: 'postern:', score });
  const changes: Array<boolean> = [];
  const store = createResilientStore({
    primary, fallback: createMemoryStore({ score }), failMode, failCooldownMs: 1_000,
    onHealthChange: (h) => changes.push(h.ok),
  });
  return { primary, store, changes };
}

// nextEvent, not events.once: ioredis says 'error' for each failed reconnect on its way to
// 'ready' (and may say it before 'close'), which would reject events.once (a race on a busy machine)
async function kill(server: RedisProcess, primary: RedisStore): Promise<void> {
  const closed = nextEvent(primary.client, 'close');
  await server.kill();
  await closed;
}

async function restart(server: RedisProcess, primary: RedisStore): Promise<void> {
  const ready = nextEvent(primary.client, 'ready');
  await server.restart();
  await ready;
}

describe('resilient store', () => {
  let server: RedisProcess;
  before(async () => { server = await startRedisServer(); });
  after(() => server.stop());

  it('fails open to local limits when Redis dies, reports it, and returns to Redis when it is back', async (t) => {
    const { primary, store, changes } = await open(server, 'open');
    t.after(() => store.close());
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.equal((await primary.inspect(ip, T0)).buckets.length, 1);
    assert.deepEqual(store.health(), { ok: true });

    await kill(server, primary);
    const h = store.health();
    assert.equal(h.ok, false);
    // Local limits still hold (burst 2 on this node), and learning goes on locally.
    const local = await store.take(r, T0);
    assert.equal(local.allowed, true);
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 1000 });
    await store.learn([{ subject: ip, delta: 3 }], T0);
    assert.equal((await store.scores([ip], T0))[0]!.score, 3);
    // A local reservation is released locally.
    assert.ok(local.allowed);
    await store.release(local.reservation, T0);
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.equal(store.health().ok, false);

    await restart(server, primary);
    assert.deepEqual(store.health(), { ok: true });
    assert.equal((await store.take(r, T0)).allowed, true);
    // The take went to the new (empty) Redis.
    const seen = await primary.inspect(ip, T0);
    assert.deepEqual(seen.buckets.map((b) => [b.limiter, b.tokens]), [['ip-messages', 1]]);
    assert.deepEqual(changes, [false, true]);
  });

  it('fails closed: takes are refused as storeUnavailable while Redis is away, scores read neutral', async (t) => {
    const { primary, store } = await open(server, 'closed');
    t.after(() => store.close());
    await kill(server, primary);
    assert.deepEqual(await store.take(r, T0), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 60_000, storeUnavailable: true });
    assert.deepEqual(await store.scores([ip], T0), [{ subject: ip, score: 0, samples: 0, updatedAt: 0 }]);
    await assert.rejects(store.inspect(ip, T0));
    await restart(server, primary);
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.deepEqual(store.health(), { ok: true });
  });

  it('answers locally when commands time out on a live connection, then tries Redis again after the cooldown', async (t) => {
    const { primary, store } = await open(server, 'open', 100);
    const admin = new Redis(server.url);
    t.after(async () => {
      await admin.quit();
      await store.close();
    });
    const other = [req('ip-messages', ipSubject('192.0.2.11'), 1, 2)];
    await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    const started = performance.now();
    assert.equal((await store.take(other, T0)).allowed, true);
    assert.ok(performance.now() - started < 1_000, 'no longer than the command timeout');
    assert.match((store.health() as { error: string }).error, /timed out/i);
    // Within the cooldown the same (live but failing) connection is not asked again.
    assert.equal((await store.take(other, T0 + 500)).allowed, true);
    assert.deepEqual(await store.take(other, T0 + 500), { allowed: false, limitedBy: 'ip-messages', retryAfterMs: 500 });
    await admin.call('CLIENT', 'UNPAUSE');
    assert.equal(primary.isReady(), true);
    assert.equal((await store.take(other, T0 + 1_000)).allowed, true);
    assert.deepEqual(store.health(), { ok: true });
  });

  it('is what createStoreFromConfig builds when redis.url is set, with the observer wired', async (t) => {
    const ops: string[] = [];
    const store = createStoreFromConfig(
      { redis: redisConfigSchema.parse({ url: server.url, keyPrefix: 'cfg:' }), reputation: reputationConfigSchema.parse({}) },
      { observer: { storeError: (op) => ops.push(`error:${op}`), storeLatency: (op) => ops.push(op) }, connect: { reconnectMaxMs: 50 } },
    );
    t.after(() => store.close());
    // Before the connection is up the local store answers; once ready, Redis does.
    assert.equal((await store.take(r, T0)).allowed, true);
    const probe = new Redis(server.url);
    t.after(() => probe.quit());
    await eventually(() => store.health().ok, 'the store connected to Redis');
    assert.equal((await store.take(r, T0)).allowed, true);
    assert.equal(await probe.exists('cfg:rl:{ip:192.0.2.10}:ip-messages'), 1);
    assert.deepEqual(ops, ['take']);
  });
});
