/**
 * Redis for tests, on loopback only:
 * - the shared server at REDIS_URL (or 127.0.0.1:6379) with a unique key prefix per run,
 *   and a cleanup that deletes exactly that prefix;
 * - a private `redis-server` on a free port, for tests that kill and restart it;
 * - a three-master Redis Cluster of private servers (`redis-cli --cluster create`).
 * Every process and temp dir is removed by stop(); no persistence (--save '' --appendonly no).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { eventually } from './wait.ts';

const run = promisify(execFile);

export function sharedRedisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/** "postern-test:<label>:<random>:" — unique per call, readable in redis-cli. */
export function uniquePrefix(label: string): string {
  return `postern-test:${label}:${process.pid}-${randomBytes(4).toString('hex')}:`;
}

/** Is the shared Redis there? (Tests that need it skip with this as the reason otherwise.) */
export async function sharedRedisAvailable(): Promise<boolean> {
  const client = new Redis(sharedRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1_000, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Every key under a prefix, on every master of a cluster. */
export async function keysWithPrefix(client: Redis | Cluster, prefix: string): Promise<string[]> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const out: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out.sort();
}

/** Deletes every key under the prefix (one key per DEL, so it works across cluster slots). */
export async function deletePrefix(client: Redis | Cluster, prefix: string): Promise<number> {
  const keys = await keysWithPrefix(client, prefix);
  await Promise.all(keys.map((k) => client.del(k)));
  return keys.length;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port p whose cluster bus port p + 10000 is free too. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20_000 + Math.floor(Math.random() * 25_000);
    if (await portFree(p) && await portFree(p + 10_000)) return p;
  }
  throw new Error('no free port found');
}

export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** SIGKILL (a crash, not a shutdown) and wait for the exit. */
  kill(): Promise<void>;
  /** Start again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  /** SIGSTOP: the server stalls with its connections open (a frozen or swapped-out node). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Kill and remove the temp dir. */
  stop(): Promise<void>;
}

function startProcess(args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)));
  });
}

function killProcess(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export async function startRedisServer(opts: { port?: number; extraArgs?: string[] } = {}): Promise<RedisProcess> {
  const port = opts.port ?? await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'postern-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(opts.extraArgs ?? [])];
  let child: ChildProcess | null = await startProcess(args);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      await killProcess(child);
      child = null;
    },
    async restart() {
      await killProcess(child);
      child = await startProcess(args);
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async stop() {
      await killProcess(child);
      child = null;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisClusterProcess {
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** Three masters, no replicas; resolves once every node reports cluster_state:ok. */
export async function startRedisCluster(size = 3): Promise<RedisClusterProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const port = await freePort();
      ports.push(port);
      children.push(await startProcess([
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000',
      ]));
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      // Gossip needs a moment to agree after create; poll each node (a real process must settle,
      // slowly on a busy machine: a generous deadline, no fixed number of tries).
      await eventually(async () => (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok'), `cluster node ${port} reports cluster_state:ok`, 60_000);
    }
  } catch (err) {
    await Promise.all(children.map(killProcess));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    async stop() {
      await Promise.all(children.map(killProcess));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deletes a test's prefix on the shared Redis (an after() hook's clean-up). */
export async function clearSharedPrefix(prefix: string): Promise<void> {
  const client = new Redis(sharedRedisUrl());
  try {
    await deletePrefix(client, prefix);
  } finally {
    client.disconnect();
  }
}
