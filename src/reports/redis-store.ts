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
  return new RedisReportStore(opts);
}

class RedisReportStore implements ReportStore {
  readonly #opts: RedisReportStoreOptions;
  readonly #client: RedisClient;
  readonly #s: Scripts;
  readonly #domainsKey: string;
  // (domain, period) pairs this process already put in the domains index.
  readonly #indexed = new Set<string>();
  #indexedPeriod = 0;
  readonly #replicas = new Map<Redis, { count: number; at: number }>();

  constructor(opts: RedisReportStoreOptions) {
    this.#opts = opts;
    this.#client = opts.client;
    this.#domainsKey = `${opts.keyPrefix}dmarc:domains`;
    const defs: Array<[keyof Scripts, string, number]> = [
      ['dmarcCollect', 'collect', 3], ['dmarcClose', 'close', 6], ['dmarcCas', 'cas', 2], ['dmarcUnlock', 'unlock', 1], ['dmarcRenew', 'renew', 1],
    ];
    for (const [name, file, numberOfKeys] of defs) {
      if (!(name in opts.client)) opts.client.defineCommand(name, { lua: script(file), numberOfKeys });
    }
    this.#s = opts.client as unknown as Scripts;
  }

  async collect(op: CollectOp): Promise<void> {
    if (op.period !== this.#indexedPeriod) {
      this.#indexed.clear();
      this.#indexedPeriod = op.period;
    }
    const marker = op.domain;
    const index = this.#indexed.has(marker) ? null : this.#client.zadd(this.#domainsKey, 'GT', op.periodEnd, op.domain).then(() => this.#indexed.add(marker));
    const k = (rest: string): string => this.#k(op.domain, rest);
    const count = this.#s.dmarcCollect(k('periods'), k(`rows:${op.period}`), k(`meta:${op.period}`),
      op.period, op.periodEnd, op.field, op.policy, this.#opts.ttlSeconds);
    await Promise.all([index, count]);
  }

  async domains(): Promise<string[]> {
    await this.#ready();
    return this.#client.zrange(this.#domainsKey, 0, -1);
  }

  async openPeriods(domain: string): Promise<OpenPeriod[]> {
    await this.#ready();
    const flat = await this.#client.zrange(this.#k(domain, 'periods'), 0, -1, 'WITHSCORES');
    const out: OpenPeriod[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const period = Number(flat[i]);
      const [rows, meta] = await Promise.all([this.#client.hgetall(this.#k(domain, `rows:${period}`)), this.#client.hgetall(this.#k(domain, `meta:${period}`))]);
      out.push({ period, periodEnd: Number(flat[i + 1]), begin: Number(meta.begin ?? period), policy: meta.policy ?? '', rows: counts(rows) });
    }
    return out;
  }

  async closePeriod(op: CloseOp): Promise<boolean> {
    await this.#ready();
    const k = (rest: string): string => this.#k(op.domain, rest);
    const made = await this.#s.dmarcClose(k('periods'), k('jobs'), k(`rows:${op.period}`),
      k(`meta:${op.period}`), k(`job:${op.jobId}`), k(`jobrows:${op.jobId}`),
      op.period, op.jobId, op.end, op.due, this.#opts.ttlSeconds, op.reopenAt === null ? '' : op.reopenAt);
    return made === 1;
  }

  async jobs(domain: string, now: number): Promise<string[]> {
    await this.#ready();
    return this.#client.zrangebyscore(this.#k(domain, 'jobs'), '-inf', Number.isFinite(now) ? now : '+inf');
  }

  async lock(domain: string, jobId: string, ttlMs: number): Promise<string | null> {
    await this.#ready();
    const token = randomBytes(12).toString('hex');
    const ok = await this.#client.set(this.#k(domain, `lock:${jobId}`), token, 'PX', ttlMs, 'NX');
    return ok === 'OK' ? token : null;
  }

  async renew(domain: string, jobId: string, token: string, ttlMs: number): Promise<boolean> {
    await this.#ready();
    return (await this.#s.dmarcRenew(this.#k(domain, `lock:${jobId}`), token, ttlMs)) === 1;
  }

  async unlock(domain: string, jobId: string, token: string): Promise<void> {
    await this.#ready();
    await this.#s.dmarcUnlock(this.#k(domain, `lock:${jobId}`), token);
  }

  async load(domain: string, jobId: string): Promise<JobData | null> {
    await this.#ready();
    const [job, rows] = await Promise.all([this.#client.hgetall(this.#k(domain, `job:${jobId}`)), this.#client.hgetall(this.#k(domain, `jobrows:${jobId}`))]);
    if (!job.begin) return null;
    const states = new Map(Object.entries(job).filter(([f]) => f.startsWith('s:')));
    return { id: jobId, domain, begin: Number(job.begin), end: Number(job.end), policy: job.policy ?? '', rows: counts(rows), parts: job.parts ?? null, states } satisfies JobData;
  }

  async cas(domain: string, jobId: string, token: string, field: string, allowed: readonly string[], value: string, ttlMs: number): Promise<boolean> {
    await this.#ready();
    return (await this.#s.dmarcCas(this.#k(domain, `lock:${jobId}`), this.#k(domain, `job:${jobId}`), token, field, allowed.join('|'), value, ttlMs)) === 1;
  }

  async schedule(domain: string, jobId: string, at: number): Promise<void> {
    await this.#ready();
    await this.#client.zadd(this.#k(domain, 'jobs'), 'XX', at, jobId);
  }

  async finish(domain: string, jobId: string, keepMs: number): Promise<void> {
    await this.#ready();
    await this.#client.zrem(this.#k(domain, 'jobs'), jobId);
    await Promise.all([this.#client.pexpire(this.#k(domain, `job:${jobId}`), keepMs), this.#client.pexpire(this.#k(domain, `jobrows:${jobId}`), keepMs)]);
  }

  async durable(domain: string): Promise<boolean> {
    await this.#ready();
    const node = nodeFor(this.#client, this.#k(domain, 'jobs'));
    if (!node) return false;
    // A master without replicas has nothing to wait for; the count is re-read each minute.
    let known = this.#replicas.get(node);
    if (!known || Date.now() - known.at > 60_000) {
      const info = await node.info('replication');
      known = { count: Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0), at: Date.now() };
      this.#replicas.set(node, known);
    }
    if (known.count === 0) return true;
    // RFC-free but Redis-documented: WAIT makes the write reach a replica before we go on,
    // so a failover right after it cannot forget a "sending" mark (and let another node send).
    const acked = await node.call('WAIT', 1, 1_000) as number;
    return acked >= 1;
  }

  close(): Promise<void> {
    if (this.#opts.ownsClient) this.#client.disconnect();
    return Promise.resolve();
  }

  /** A key of the report domain: its hash tag keeps all of them in one slot. */
  #k(domain: string, rest: string): string {
    return `${this.#opts.keyPrefix}dmarc:{${domain}}:${rest}`;
  }

  /** No offline queue (redis-connect.ts): the sender waits for the connection, the mail path does not. */
  #ready(): Promise<void> {
    return waitReady(this.#client, this.#opts.connectTimeoutMs);
  }
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
