/**
 * Starts a real gateway (createGateway, as `serve` does) on 127.0.0.1:0 with a config given
 * as an object, talking to the test's loopback DNS server and backend sink. Captures the
 * JSON log lines so tests can assert the decision line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/app.ts';
import { deepFreeze } from '../../src/config/load.ts';
import { configSchema, type ConfigInput } from '../../src/config/schema.ts';
import type { Clock } from '../../src/core/clock.ts';
import type { RateStore } from '../../src/reputation/types.ts';
import type { StartupResources } from '../../src/startup/resources.ts';

export const SHIPPED_POLICIES = path.resolve(import.meta.dirname, '../../policies');

/**
 * A temporary copy of the shipped policy folder with one of its samples turned on (`NAME.sample`
 * copied to NAME) and an entry added to one of its lists: how an admin follows a sample's recipe.
 */
export function shippedWithSample(prefix: string, sample: string, list: string, entry: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.cpSync(SHIPPED_POLICIES, dir, { recursive: true });
  fs.copyFileSync(path.join(dir, `${sample}.sample`), path.join(dir, sample));
  fs.appendFileSync(path.join(dir, 'lists', list), `${entry}\n`);
  return dir;
}

export interface TestGateway {
  readonly port: number;
  readonly httpPort: number | null;
  readonly gateway: Gateway;
  readonly logs: Array<Record<string, unknown>>;
  /** The decision log lines so far. */
  decisions(): Array<Record<string, unknown>>;
  /** Folder of the policy files in use (for reload tests). */
  readonly policyDir: string;
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly dnsPort: number;
  readonly backendPort: number;
  /** Policy files by name (written to a temp folder), or a folder; default: the shipped policies/. */
  readonly policies?: Record<string, string> | string;
  readonly config?: Partial<ConfigInput>;
  /** Injected seams (createGateway's overrides): a manual clock, a shared rate store. */
  readonly clock?: Clock;
  readonly store?: RateStore;
  /** The in-serve DMARC report scheduler's interval (default 5 minutes). */
  readonly reportSchedulerIntervalMs?: number;
  /** The policy set and lists as start-up loaded them, given instead (a rule set a test built). */
  readonly resources?: StartupResources;
}

export async function startGateway(opts: GatewayOptions): Promise<TestGateway> {
  let policyDir = SHIPPED_POLICIES;
  let tempDir: string | null = null;
  if (typeof opts.policies === 'string') policyDir = opts.policies;
  else if (opts.policies) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-policies-'));
    for (const [name, text] of Object.entries(opts.policies)) fs.writeFileSync(path.join(tempDir, name), text);
    policyDir = tempDir;
  }
  const input: ConfigInput = {
    listen: ['127.0.0.1:0'],
    hostname: 'mx.postern.test',
    domains: ['example.net'],
    ...opts.config,
    backend: { host: '127.0.0.1', port: opts.backendPort, ...opts.config?.backend },
    // loopback answers at once, but a busy machine can delay any answer: a generous timeout
    dns: { servers: [`127.0.0.1:${opts.dnsPort}`], timeoutMs: 2_000, attempts: 1, ...opts.config?.dns },
    metrics: { listen: '127.0.0.1:0', ...opts.config?.metrics },
    policies: policyDir,
    log: { level: 'debug', ...opts.config?.log },
    shutdown: { drainTimeoutMs: 2_000, ...opts.config?.shutdown },
  };
  const config = deepFreeze(configSchema.parse(input));
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: config.log.level }, sink);
  const gateway = await createGateway(config, {
    logger, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.store ? { store: opts.store } : {}), ...(opts.resources ? { resources: opts.resources } : {}),
    ...(opts.reportSchedulerIntervalMs ? { reportSchedulerIntervalMs: opts.reportSchedulerIntervalMs } : {}),
  });
  const { smtp, http } = await gateway.start();
  return {
    port: smtp[0]!.port,
    httpPort: http,
    gateway,
    logs,
    policyDir,
    decisions: () => logs.filter((l) => l.event === 'decision'),
    async close() {
      await gateway.stop();
      if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
