/**
 * The store from configuration: memory on one node (no Redis configured), else Redis behind
 * the resilient wrapper with a memory fallback. The composition root calls this once.
 */
import type { RedisConfig, ReputationConfig } from './config.ts';
import { createMemoryStore } from './memory-store.ts';
import { connectRedis, type ConnectOverrides } from './redis-connect.ts';
import { createRedisStore } from './redis-store.ts';
import { createResilientStore } from './resilient-store.ts';
import type { ScoreParams } from './scores.ts';
import type { RateStore, StoreObserver } from './types.ts';

export function scoreParams(rep: ReputationConfig): ScoreParams {
  return { halfLifeMs: rep.halfLifeHours * 3_600_000, ttlMs: rep.keyTtlDays * 86_400_000 };
}

export function redisConfigured(redis: RedisConfig): boolean {
  return redis.url !== undefined || redis.nodes.length > 0 || redis.sentinel.masterName !== undefined;
}

export function createStoreFromConfig(cfg: { readonly redis: RedisConfig; readonly reputation: ReputationConfig }, deps: {
  readonly observer?: StoreObserver;
  readonly onHealthChange?: (health: { ok: true } | { ok: false; error: string }) => void;
  readonly connect?: ConnectOverrides;
} = {}): RateStore {
  const score = scoreParams(cfg.reputation);
  const memory = (): RateStore => createMemoryStore({ score, maxBuckets: cfg.reputation.memoryMaxKeys, maxScores: cfg.reputation.memoryMaxKeys });
  if (!redisConfigured(cfg.redis)) return memory();
  const primary = createRedisStore({
    client: connectRedis(cfg.redis, deps.connect),
    keyPrefix: cfg.redis.keyPrefix,
    score,
    ...(deps.observer ? { observer: deps.observer } : {}),
  });
  return createResilientStore({
    primary,
    fallback: memory(),
    failMode: cfg.redis.failMode,
    failCooldownMs: cfg.redis.failCooldownMs,
    ...(deps.onHealthChange ? { onHealthChange: deps.onHealthChange } : {}),
  });
}
