/**
 * Runs the real CLI (`node src/main.ts serve --config FILE`) as a child process, so that its
 * CPU time and peak RSS can be read from /proc for the gateway alone. The config is a temporary
 * YAML file pointing at the bench's DNS server and sink, on free loopback ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { withRuntimeFlags } from '../../src/cluster/runtime-flags.ts';
import type { ConfigInput } from '../../src/config/schema.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A port free right now: bind 127.0.0.1:0, read it, close (a small race we accept in a bench). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface GatewayProcess {
  readonly pid: number;
  readonly smtpPort: number;
  readonly metricsPort: number;
  readonly configFile: string;
  /** The child's stdout/stderr lines so far (last 200 kept). */
  output(): readonly string[];
  /** Lines written since the previous call (warnings during one point). */
  drainOutput(): readonly string[];
  /** SIGTERM, then SIGKILL after graceMs; removes the temp folder. */
  stop(graceMs?: number): Promise<void>;
  /** Synchronous SIGKILL and temp folder removal, for process 'exit' and signal handlers. */
  kill(): void;
}

export interface GatewayProcessOptions {
  readonly dnsPort: number;
  readonly backendPort: number;
  readonly domains: readonly string[];
  /** Rate/reputation store in Redis (else the embedded memory store), with its own key prefix. */
  readonly redis?: { readonly url: string; readonly keyPrefix: string };
  /** Config keys over the bench's own (one level deep per section: `limits: {…}` merges into limits). */
  readonly config?: Partial<ConfigInput>;
  /** Node.js options for the gateway (BENCH_GATEWAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=prof"). */
  readonly nodeArgs?: readonly string[];
}

/** `extra` over `base`, merging plain objects one level deep (a section's keys, not the section). */
function overlay(base: ConfigInput, extra: Partial<ConfigInput>): ConfigInput {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const before = out[key];
    const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = plain(before) && plain(value) ? { ...before, ...value } : value;
  }
  return out;
}

export async function startGatewayProcess(opts: GatewayProcessOptions): Promise<GatewayProcess> {
  const smtpPort = await freePort();
  const metricsPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-bench-'));
  const config: ConfigInput = overlay({
    listen: [`127.0.0.1:${smtpPort}`],
    hostname: 'mx.postern.bench',
    domains: [...opts.domains],
    // The gateway holds a backend connection for each transaction (RCPT is mirrored), and the
    // sink, being smtp-server, pauses 100 ms before its greeting where Postfix does not: keep
    // an idle connection per client above the highest concurrency, or each point would
    // measure the sink's connection setup.
    backend: { host: '127.0.0.1', port: opts.backendPort, poolSize: 256 },
    dns: { servers: [`127.0.0.1:${opts.dnsPort}`] },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    policies: path.join(ROOT, 'policies'),
    // Every bench connection comes from 127.0.0.1: lift the per-IP cap above the highest concurrency.
    limits: { maxConnections: 2_000, maxConnectionsPerIp: 1_000 },
    // The rate limits run (every step asks the store) but never bind: all load comes from one IP.
    rateLimits: Object.fromEntries(['ipConnections', 'netConnections', 'ipMessages', 'netMessages', 'domainMessages', 'ipRecipients', 'netRecipients', 'rcptMessages']
      .map((k) => [k, { rate: '10000000/min', burst: 10_000_000 }])),
    ...(opts.redis ? { redis: { url: opts.redis.url, keyPrefix: opts.redis.keyPrefix } } : {}),
    log: { level: 'warn' },
    shutdown: { drainTimeoutMs: 5_000 },
  }, opts.config ?? {});
  const configFile = path.join(dir, 'postern.yaml');
  fs.writeFileSync(configFile, stringify(config));

  const lines: string[] = [];
  let unread = 0;
  // process.execPath is the Node 24 binary itself (node_modules/.bin/node is a symlink to it),
  // so the child's pid is the gateway's and not a wrapper's.
  // Started as bin/postern and deploy/ start it (the runtime flags), plus the bench's own.
  const child: ChildProcess = spawn(process.execPath, [...withRuntimeFlags(opts.nodeArgs ?? []), 'src/main.ts', 'serve', '--config', configFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // POSTERN_* variables of the calling shell would override the file: keep only the rest.
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('POSTERN_'))),
  });
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      lines.push(line);
      unread++;
      if (lines.length > 200) lines.shift();
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => {
    alive = false;
  });

  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  const kill = (): void => {
    if (alive) child.kill('SIGKILL');
    cleanup();
  };
  const pid = child.pid;
  if (pid === undefined) throw new Error('gateway: spawn failed');

  const ready = await waitReady(metricsPort, () => alive, 30_000);
  if (!ready) {
    kill();
    await exited;
    cleanup();
    throw new Error(`gateway did not become ready; its output:\n${lines.join('\n')}`);
  }

  return {
    pid,
    smtpPort,
    metricsPort,
    configFile,
    output: () => lines.slice(),
    drainOutput() {
      const fresh = lines.slice(Math.max(0, lines.length - unread));
      unread = 0;
      return fresh;
    },
    kill,
    async stop(graceMs = 10_000) {
      if (alive) {
        child.kill('SIGTERM');
        const timer = setTimeout(kill, graceMs);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    },
  };
}

/** Polls /readyz (backend reachable, policies loaded) until 200, the child dies, or the time is up. */
async function waitReady(metricsPort: number, alive: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && alive()) {
    try {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return false;
}
