/**
 * Report data in Redis, shared by every node (single server, Sentinel or Cluster).
 *
 * Keys (prefix = redis.keyPrefix + "dmarc:"): everything about one report domain carries the
 * hash tag {domain}, so each script touches one slot (STYLE §4.9):
 *   {d}:periods  ZSET open periods → end      {d}:rows:<P>  HASH row → count   {d}:meta:<P>
 *   {d}:jobs     ZSET job → next attempt      {d}:job:<J>   HASH job + states  {d}:jobrows:<J>
 *   {d}:lock:<J> STRING token (SET NX PX)
 * and one index outside any tag: domains ZSET (domain → last period end), written once per
 * domain and period by each node (a cache), read by the sender.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster, type Redis } from 'ioredis';
import { waitReady, type RedisClient } from '../reputation/redis-connect.ts';
import { keySlot } from './slot.ts';
import type { CloseOp, CollectOp, JobData, OpenPeriod, ReportStore } from './store.ts';

type Call = (...args: Array<string | number>) => Promise<number>;
interface Scripts { dmarcCollect: Call; dmarcClose: Call; dmarcCas: Call; dmarcUnlock: Call; dmarcRenew: Call }

function script(name: string): string {
  return readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
}

export interface RedisReportStoreOptions {
  readonly client: RedisClient;
  readonly keyPrefix: string;
  /** Lifetime of counters and jobs (s): a period plus the retry window, with margin. */
  readonly ttlSeconds: number;
  /** Close the client on close() (false when it is shared). */
  readonly ownsClient: boolean;
  /** How long the sender's operations wait for a (re)connection; collection never waits. */
  readonly connectTimeoutMs: number;
}

export function createRedisReportStore(opts: RedisReportStoreOptions): ReportStore {
  const { client } = opts;
  const base = `${opts.keyPrefix}dmarc:`;
  const k = (domain: string, rest: string): string => `${base}{${domain}}:${rest}`;
  const domainsKey = `${base}domains`;
  const defs: Array<[keyof Scripts, string, number]> = [
    ['dmarcCollect', 'collect', 3], ['dmarcClose', 'close', 6], ['dmarcCas', 'cas', 2], ['dmarcUnlock', 'unlock', 1], ['dmarcRenew', 'renew', 1],
  ];
  for (const [name, file, numberOfKeys] of defs) {
    if (!(name in client)) client.defineCommand(name, { lua: script(file), numberOfKeys });
  }
  const s = client as unknown as Scripts;
  // (domain, period) pairs this process already put in the domains index.
  const indexed = new Set<string>();
  let indexedPeriod = 0;
  const replicas = new Map<Redis, { count: number; at: number }>();
  // No offline queue (redis-connect.ts): the sender waits for the connection, the mail path does not.
  const ready = (): Promise<void> => waitReady(client, opts.connectTimeoutMs);

  return {
    async collect(op: CollectOp) {
      if (op.period !== indexedPeriod) {
        indexed.clear();
        indexedPeriod = op.period;
      }
      const marker = op.domain;
      const index = indexed.has(marker) ? null : client.zadd(domainsKey, 'GT', op.periodEnd, op.domain).then(() => indexed.add(marker));
      const count = s.dmarcCollect(k(op.domain, 'periods'), k(op.domain, `rows:${op.period}`), k(op.domain, `meta:${op.period}`),
        op.period, op.periodEnd, op.field, op.policy, opts.ttlSeconds);
      await Promise.all([index, count]);
    },
    async domains() {
      await ready();
      return client.zrange(domainsKey, 0, -1);
    },
    async openPeriods(domain) {
      await ready();
      const flat = await client.zrange(k(domain, 'periods'), 0, -1, 'WITHSCORES');
      const out: OpenPeriod[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        const period = Number(flat[i]);
        const [rows, meta] = await Promise.all([client.hgetall(k(domain, `rows:${period}`)), client.hgetall(k(domain, `meta:${period}`))]);
        out.push({ period, periodEnd: Number(flat[i + 1]), begin: Number(meta.begin ?? period), policy: meta.policy ?? '', rows: counts(rows) });
      }
      return out;
    },
    async closePeriod(op: CloseOp) {
      await ready();
      const made = await s.dmarcClose(k(op.domain, 'periods'), k(op.domain, 'jobs'), k(op.domain, `rows:${op.period}`),
        k(op.domain, `meta:${op.period}`), k(op.domain, `job:${op.jobId}`), k(op.domain, `jobrows:${op.jobId}`),
        op.period, op.jobId, op.end, op.due, opts.ttlSeconds, op.reopenAt === null ? '' : op.reopenAt);
      return made === 1;
    },
    async jobs(domain, now) {
      await ready();
      return client.zrangebyscore(k(domain, 'jobs'), '-inf', Number.isFinite(now) ? now : '+inf');
    },
    async lock(domain, jobId, ttlMs) {
      await ready();
      const token = randomBytes(12).toString('hex');
      const ok = await client.set(k(domain, `lock:${jobId}`), token, 'PX', ttlMs, 'NX');
      return ok === 'OK' ? token : null;
    },
    async renew(domain, jobId, token, ttlMs) {
      await ready();
      return (await s.dmarcRenew(k(domain, `lock:${jobId}`), token, ttlMs)) === 1;
    },
    async unlock(domain, jobId, token) {
      await ready();
      await s.dmarcUnlock(k(domain, `lock:${jobId}`), token);
    },
    async load(domain, jobId) {
      await ready();
      const [job, rows] = await Promise.all([client.hgetall(k(domain, `job:${jobId}`)), client.hgetall(k(domain, `jobrows:${jobId}`))]);
      if (!job.begin) return null;
      const states = new Map(Object.entries(job).filter(([f]) => f.startsWith('s:')));
      return { id: jobId, domain, begin: Number(job.begin), end: Number(job.end), policy: job.policy ?? '', rows: counts(rows), parts: job.parts ?? null, states } satisfies JobData;
    },
    async cas(domain, jobId, token, field, allowed, value, ttlMs) {
      await ready();
      return (await s.dmarcCas(k(domain, `lock:${jobId}`), k(domain, `job:${jobId}`), token, field, allowed.join('|'), value, ttlMs)) === 1;
    },
    async schedule(domain, jobId, at) {
      await ready();
      await client.zadd(k(domain, 'jobs'), 'XX', at, jobId);
    },
    async finish(domain, jobId, keepMs) {
      await ready();
      await client.zrem(k(domain, 'jobs'), jobId);
      await Promise.all([client.pexpire(k(domain, `job:${jobId}`), keepMs), client.pexpire(k(domain, `jobrows:${jobId}`), keepMs)]);
    },
    async durable(domain) {
      await ready();
      const node = nodeFor(client, k(domain, 'jobs'));
      if (!node) return false;
      // A master without replicas has nothing to wait for; the count is re-read each minute.
      let known = replicas.get(node);
      if (!known || Date.now() - known.at > 60_000) {
        const info = await node.info('replication');
        known = { count: Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0), at: Date.now() };
        replicas.set(node, known);
      }
      if (known.count === 0) return true;
      // RFC-free but Redis-documented: WAIT makes the write reach a replica before we go on,
      // so a failover right after it cannot forget a "sending" mark (and let another node send).
      const acked = await node.call('WAIT', 1, 1_000) as number;
      return acked >= 1;
    },
    close() {
      if (opts.ownsClient) client.disconnect();
      return Promise.resolve();
    },
  };
}

function counts(hash: Record<string, string>): Map<string, number> {
  return new Map(Object.entries(hash).map(([f, v]) => [f, Number(v)]));
}

/** The connection that serves `key`: the client itself, or the master of the key's slot. */
function nodeFor(client: RedisClient, key: string): Redis | null {
  if (!(client instanceof Cluster)) return client;
  const owner = client.slots[keySlot(key)]?.[0];
  return client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner) ?? null;
}
