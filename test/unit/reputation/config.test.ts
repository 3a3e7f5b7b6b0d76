import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import {
  baseLimits, rateLimitsConfigSchema, redisConfigSchema, reputationConfigSchema, reputationConfigShape, toPerSecond,
} from '../../../src/reputation/config.ts';
import { parseSentinelUrl } from '../../../src/reputation/redis-connect.ts';
import { createStoreFromConfig, redisConfigured } from '../../../src/reputation/store.ts';

const whole = z.strictObject(reputationConfigShape);

describe('reputation configuration', () => {
  it('has defaults for everything, and no Redis', () => {
    const c = whole.parse({});
    assert.equal(c.redis.url, undefined);
    assert.deepEqual({ ...c.redis, sentinel: { ...c.redis.sentinel } }, {
      keyPrefix: 'postern:', cluster: false, nodes: [], sentinel: { nodes: [] },
      commandTimeoutMs: 500, connectTimeoutMs: 2000, failMode: 'open', failCooldownMs: 1000,
    });
    assert.deepEqual(c.reputation, {
      halfLifeHours: 72, minSamples: 5, networkBitsV4: 24, networkBitsV6: 64, keyTtlDays: 30, scoreCacheSeconds: 30, memoryMaxKeys: 100_000,
      thresholds: { trusted: 50, good: 10, suspect: -10, bad: -40 },
      multipliers: { trusted: 4, good: 2, neutral: 1, suspect: 0.5, bad: 0.25 },
    });
    assert.deepEqual(c.rateLimits.ipConnections, { rate: '600/min', burst: 300 });
    assert.deepEqual(c.lists, {});
    assert.deepEqual(baseLimits(c.rateLimits)['ip-messages'], { ratePerSecond: 20, burst: 600 });
  });

  it('reads rates as N/unit or {perSecond}', () => {
    assert.equal(toPerSecond('60/min'), 1);
    assert.equal(toPerSecond('7200 / hour'), 2);
    assert.equal(toPerSecond('86400/day'), 1);
    assert.equal(toPerSecond({ perSecond: 0.5 }), 0.5);
    assert.deepEqual(rateLimitsConfigSchema.parse({ ipMessages: { rate: { perSecond: 3 } } }).ipMessages, { rate: { perSecond: 3 }, burst: 600 });
    assert.throws(() => rateLimitsConfigSchema.parse({ ipMessages: { rate: '10 per minute' } }));
    assert.throws(() => rateLimitsConfigSchema.parse({ ipMessages: { rate: '0/min' } }));
    assert.throws(() => rateLimitsConfigSchema.parse({ ipMessages: { burst: 0.5 } }));
  });

  it('bounds multipliers to 0 or [1/8, 8] and orders the thresholds', () => {
    assert.equal(reputationConfigSchema.parse({ multipliers: { bad: 0 } }).multipliers.bad, 0);
    assert.equal(reputationConfigSchema.parse({ multipliers: { trusted: 8, bad: 0.125 } }).multipliers.trusted, 8);
    assert.throws(() => reputationConfigSchema.parse({ multipliers: { trusted: 9 } }), /within \[1\/8, 8\]/);
    assert.throws(() => reputationConfigSchema.parse({ multipliers: { suspect: 0.1 } }), /within \[1\/8, 8\]/);
    assert.throws(() => reputationConfigSchema.parse({ thresholds: { good: 60 } }), /bad < suspect < good < trusted/);
  });

  it('refuses unknown keys, a braced key prefix, and a non-Redis URL', () => {
    assert.throws(() => redisConfigSchema.parse({ prefix: 'x' }));
    assert.throws(() => redisConfigSchema.parse({ keyPrefix: 'a{b}:' }), /hash tag/);
    assert.throws(() => redisConfigSchema.parse({ url: 'http://x' }), /redis:\/\//);
    assert.equal(redisConfigSchema.parse({ url: 'redis+sentinel://h1:26379,h2:26379/main' }).url, 'redis+sentinel://h1:26379,h2:26379/main');
  });

  it('documents every key', () => {
    const undocumented: string[] = [];
    const walk = (schema: z.ZodType, path: string): void => {
      let inner = schema;
      let described = Boolean(schema.description);
      for (;;) {
        const d = inner._zod.def as { type: string; innerType?: z.ZodType };
        if (!d.innerType) break;
        inner = d.innerType;
        described ||= Boolean(inner.description);
      }
      if (inner._zod.def.type === 'object') {
        for (const [k, v] of Object.entries((inner as unknown as { shape: Record<string, z.ZodType> }).shape)) walk(v, path ? `${path}.${k}` : k);
      } else if (!described) undocumented.push(path);
    };
    walk(whole, '');
    assert.deepEqual(undocumented, []);
  });
});

describe('redis connection settings', () => {
  it('parses redis+sentinel:// URLs', () => {
    assert.deepEqual(parseSentinelUrl('redis+sentinel://user:p%40ss@s1:26379,[::1]:26380,s3/mymaster/2'), {
      sentinels: [{ host: 's1', port: 26379 }, { host: '::1', port: 26380 }, { host: 's3', port: 26379 }],
      name: 'mymaster', db: 2, username: 'user', password: 'p@ss',
    });
    assert.throws(() => parseSentinelUrl('redis+sentinel://s1:26379'), /mastername/);
  });

  it('builds a memory store without Redis', async () => {
    const store = createStoreFromConfig({ redis: redisConfigSchema.parse({}), reputation: reputationConfigSchema.parse({}) });
    assert.deepEqual(store.health(), { ok: true });
    assert.equal(redisConfigured(redisConfigSchema.parse({ sentinel: { masterName: 'm', nodes: ['s1:26379'] } })), true);
    await store.close();
  });
});
