/**
 * `postern reputation show|reset <ip|cidr|domain|address>`: reads or clears what the gateways
 * share in Redis. The embedded memory store lives inside one running gateway, so without
 * Redis there is nothing another process could show.
 */
import type { Config } from '../config/schema.ts';
import { reputationReset, reputationShow } from '../reputation/cli.ts';
import { connectRedis, waitReady } from '../reputation/redis-connect.ts';
import { createRedisStore } from '../reputation/redis-store.ts';
import { redisConfigured, scoreParams } from '../reputation/store.ts';

export async function reputationCommand(config: Config, action: string, target: string): Promise<string> {
  if (action !== 'show' && action !== 'reset') throw new Error(`reputation: unknown action "${action}" (show or reset)`);
  if (!redisConfigured(config.redis)) {
    throw new Error('reputation: no Redis configured (redis.url / POSTERN_REDIS_URL): the embedded memory store lives inside the running gateway and cannot be read from outside');
  }
  const client = connectRedis(config.redis);
  client.on('error', () => undefined);
  try {
    await waitReady(client, config.redis.connectTimeoutMs);
    const store = createRedisStore({ client, keyPrefix: config.redis.keyPrefix, score: scoreParams(config.reputation) });
    return action === 'show'
      ? await reputationShow(store, target, { now: Date.now(), reputation: config.reputation, keyPrefix: config.redis.keyPrefix })
      : await reputationReset(store, target);
  } finally {
    client.disconnect();
  }
}
