/**
 * The primary of a node with `workers` > 1 (node:cluster): it takes no mail itself. It
 * - starts the workers, which share the SMTP listeners, and starts again one that dies
 *   (supervisor.ts, with backoff); a worker that fails before the node is up fails the start;
 * - holds what must be per node: the memory rate store (ipc-store.ts) and the connection
 *   slots (slots.ts);
 * - serves /metrics (all workers aggregated, metrics.ts), /healthz and /readyz (ready when
 *   every worker is ready; the JSON names each worker);
 * - SIGHUP: validates the new config, policies and lists itself, then has every worker load
 *   them aside; only if all succeeded do all switch, else all keep the old set;
 * - SIGTERM/SIGINT: every worker drains, then the primary exits.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import { configChange } from '../config/reload.ts';
import { ConfigErrors } from '../core/errors.ts';
import { startHttp, type CheckResult, type HttpEndpoint, type ReadinessCheck } from '../observability/http.ts';
import { stdoutWriter } from '../observability/logger.ts';
import { createMetrics, type Metrics } from '../observability/metrics.ts';
import { loadPolicies } from '../policy/load.ts';
import { loadLists } from '../reputation/lists.ts';
import { createStoreFromConfig, redisConfigured } from '../reputation/store.ts';
import type { RateStore } from '../reputation/types.ts';
import { IpcChannel } from './ipc.ts';
import { serveStoreLearn, serveStoreRequest, STORE_LEARN, STORE_REQUEST } from './ipc-store.ts';
import { aggregateMetrics } from './metrics.ts';
import { forwardLines } from './output.ts';
import { reloadAll, type ReloadTarget } from './reload.ts';
import { withRuntimeFlags } from './runtime-flags.ts';
import { createSlotBook, SLOT_RELEASE, SLOT_REQUEST } from './slots.ts';
import { Supervisor } from './supervisor.ts';

/** The environment variable that tells a worker its slot (1…N), for its log lines. */
export const SLOT_ENV = 'NODE_POSTERN_WORKER';

const REQUEST_TIMEOUT_MS = 5_000;
const RELOAD_TIMEOUT_MS = 30_000;

interface Handle {
  readonly slot: number;
  readonly worker: Worker;
  readonly channel: IpcChannel;
  smtp: Array<{ host: string; port: number }> | null;
}

export interface PrimaryOptions {
  readonly logger: Logger;
  /** Reads the configuration again (SIGHUP): the same file and environment. */
  readonly reloadConfig: () => Config;
}

/** What `serve` drives, as it drives a gateway (app.ts): start, reload on SIGHUP, stop on SIGTERM. */
export interface Primary {
  /** Resolves once every worker listens (then logs "postern listening"); rejects if one fails to start. */
  start(): Promise<{ smtp: Array<{ host: string; port: number }>; http: number | null }>;
  reload(): Promise<void>;
  /** Drains every worker (up to the drain timeout), then closes what the primary holds. */
  stop(): Promise<void>;
}

/**
 * Validates the policies and lists (a broken set throws ConfigErrors here, once, as
 * createGateway does) and starts the workers; start() waits for them.
 */
export async function createPrimary(config: Config, opts: PrimaryOptions): Promise<Primary> {
  // Workers' output reaches stdout/stderr through here, whole lines at a time (output.ts).
  const output: Output = { stdout: stdoutWriter(config.log.pretty), stderr: (text) => void process.stderr.write(text) };
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const ruleCount = await validateAtStart(config, metrics);
  const node = new NodePrimary(config, opts, { registry, metrics, output });
  const startedAll = node.announceWhenUp(ruleCount);
  startedAll.catch(() => undefined); // start() hands the failure on
  return {
    start: () => startedAll,
    reload: () => node.reload(),
    stop: () => node.stop(),
  };
}

interface Output {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** The primary validates what the workers will load, so a broken set fails here, once; returns the rule count. */
async function validateAtStart(config: Config, metrics: Metrics): Promise<number> {
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  const rules = await loadPolicies(config.policies).catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  loadLists(config.lists);
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(rules.rules.length);
  metrics.storeUp.set(1);
  return rules.rules.length;
}

class NodePrimary {
  readonly #logger: Logger;
  readonly #reloadConfig: () => Config;
  readonly #registry: Registry;
  readonly #metrics: Metrics;
  readonly #output: Output;
  #running: Config;
  readonly #store: RateStore | null;
  readonly #slots: ReturnType<typeof createSlotBook>;
  readonly #handles = new Map<number, Handle>();
  readonly #supervisor: Supervisor<Handle>;
  /** Settled when every worker listens, or when one fails first. */
  readonly #started: Promise<void>;
  #startup: { resolve: () => void; reject: (err: Error) => void } | null = null;
  #http: HttpEndpoint | null = null;
  #reloading: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | null = null;

  /** Starts the workers. */
  constructor(config: Config, opts: PrimaryOptions, parts: { registry: Registry; metrics: Metrics; output: Output }) {
    this.#logger = opts.logger;
    this.#reloadConfig = opts.reloadConfig;
    this.#registry = parts.registry;
    this.#metrics = parts.metrics;
    this.#output = parts.output;
    this.#running = config;
    this.#store = redisConfigured(config.redis) ? null : createStoreFromConfig(config);
    this.#slots = createSlotBook(() => this.#running.limits);
    this.#started = new Promise<void>((resolve, reject) => (this.#startup = { resolve, reject }));
    this.#started.catch(() => undefined);

    // Workers accept from the shared listening socket themselves (SCHED_NONE) instead of the
    // primary accepting each connection and handing it over (node's round robin): that hand-off
    // cost about 0.4 ms of CPU per fresh connection in the bench, and SMTP clients mostly open a
    // connection per message. The kernel spreads the connections; NODE_CLUSTER_SCHED_POLICY=rr
    // brings back node's round robin.
    if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: withRuntimeFlags(process.execArgv) });
    this.#supervisor = new Supervisor<Handle>({
      count: config.workers,
      start: (slot, exited) => this.#fork(slot, exited),
      onRestart: (slot, delayMs, code, signal) => {
        this.#metrics.workerRestarts.inc();
        this.#logger.error({ worker: slot, code, signal, restartInMs: delayMs }, 'worker exited; starting a new one');
      },
    });
    this.#supervisor.start();
  }

  /** Once every worker listens: the HTTP endpoint, then "postern listening"; the addresses for start(). */
  async announceWhenUp(ruleCount: number): Promise<{ smtp: Array<{ host: string; port: number }>; http: number | null }> {
    await this.#started;
    const { listen } = this.#running.metrics;
    if (listen) this.#http = await startHttp(listen, this.#nodeMetrics(), () => this.#readiness());
    const running = this.#running;
    const addresses = { smtp: this.#listening()[0]!.smtp!, http: this.#http?.port ?? null };
    this.#logger.info({ ...addresses, workers: running.workers, domains: running.domains, backend: `${running.backend.host}:${running.backend.port}`, policies: running.policies, rules: ruleCount }, 'postern listening');
    return addresses;
  }

  reload(): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#started).then(() => this.#reloadNode(), () => undefined);
    return this.#reloading;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  /** The supervisor's start: a worker process, its IPC channel and its output. */
  #fork(slot: number, exited: (code: number | null, signal: string | null) => void): Handle {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot) });
    const handle: Handle = {
      slot, worker, smtp: null,
      channel: new IpcChannel({
        send: (message) => worker.send(message, undefined, (err: Error | null) => {
          if (err) handle.channel.close();
        }),
        onRequest: (kind, body) => this.#onRequest(handle, kind, body),
        onNote: (kind, body) => this.#onNote(handle, kind, body),
      }),
    };
    this.#handles.set(slot, handle);
    worker.on('message', (message) => handle.channel.receive(message));
    forwardLines(worker.process.stdout!, this.#output.stdout);
    forwardLines(worker.process.stderr!, this.#output.stderr);
    worker.on('exit', (code, signal) => {
      handle.channel.close();
      if (this.#handles.get(slot) === handle) this.#handles.delete(slot);
      this.#slots.releaseOwner(slot);
      this.#countWorkers();
      if (this.#startup) this.#failStartup(`worker ${slot} exited during start (${signal ?? `exit code ${code}`})`);
      exited(code, signal);
    });
    return handle;
  }

  #onRequest(handle: Handle, kind: string, body: unknown): unknown {
    switch (kind) {
      case 'hello': return { config: this.#running };
      case 'bye': return true;
      case STORE_REQUEST:
        if (!this.#store) throw new Error('no memory store here: Redis is configured');
        return serveStoreRequest(this.#store, body);
      case SLOT_REQUEST: return this.#slots.acquire(handle.slot, (body as { ip: string }).ip);
      case 'failed':
        this.#logger.error({ worker: handle.slot, error: (body as { error: string }).error }, 'worker failed to start');
        this.#failStartup((body as { error: string }).error);
        return true;
      default: throw new Error(`unknown request ${kind}`);
    }
  }

  #onNote(handle: Handle, kind: string, body: unknown): void {
    if (kind === STORE_LEARN && this.#store) serveStoreLearn(this.#store, body);
    else if (kind === SLOT_RELEASE) this.#slots.release((body as { id: number }).id);
    else if (kind === 'listening') {
      handle.smtp = (body as { smtp: Handle['smtp'] }).smtp;
      this.#countWorkers();
    }
  }

  #listening(): Handle[] {
    return [...this.#handles.values()].filter((h) => h.smtp !== null);
  }

  #countWorkers(): void {
    this.#metrics.workers.set(this.#listening().length);
    if (this.#startup && this.#listening().length === this.#running.workers) {
      this.#startup.resolve();
      this.#startup = null;
    }
  }

  #failStartup(message: string): void {
    this.#startup?.reject(new Error(message));
    this.#startup = null;
  }

  #ask<T>(handle: Handle, kind: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    return handle.channel.request<T>(kind, body, timeoutMs);
  }

  /** /readyz: a check per worker slot. */
  #readiness(): ReadinessCheck[] {
    return Array.from({ length: this.#running.workers }, (_, i) => i + 1).map((slot) => ({
      name: `worker-${slot}`,
      check: () => this.#workerReady(slot),
    }));
  }

  /** Ready when the slot's worker listens and all its own checks pass; degraded when one of them is. */
  async #workerReady(slot: number): Promise<{ ok: true; degraded?: string } | { ok: false; error: string }> {
    const handle = this.#handles.get(slot);
    if (!handle?.smtp) return { ok: false as const, error: handle ? 'starting' : 'not running (being started again)' };
    const results = await this.#ask<CheckResult[]>(handle, 'readiness', {});
    const bad = results.filter((r) => !r.ok);
    if (bad.length > 0) return { ok: false as const, error: bad.map((r) => `${r.name}: ${'error' in r ? r.error : ''}`).join('; ') };
    const degraded = results.flatMap((r) => (r.ok && r.degraded ? [`${r.name}: ${r.degraded}`] : []));
    return degraded.length > 0 ? { ok: true as const, degraded: degraded.join('; ') } : { ok: true as const };
  }

  /** /metrics: the primary's own registry with every listening worker's metrics added (metrics.ts). */
  #nodeMetrics(): Pick<Registry, 'metrics' | 'contentType'> {
    const registry = this.#registry;
    const listening = (): Handle[] => this.#listening();
    const ask = <T>(h: Handle, kind: string): Promise<T> => this.#ask<T>(h, kind, {});
    return {
      contentType: registry.contentType,
      async metrics(): Promise<string> {
        const fromWorkers = await Promise.all(listening().map((h) => ask<Awaited<ReturnType<Registry['getMetricsAsJSON']>>>(h, 'metrics').catch(() => null)));
        return (await aggregateMetrics(registry, fromWorkers.filter((m) => m !== null))).metrics();
      },
    };
  }

  #reloadFailed(err: unknown): void {
    this.#metrics.policyReloads.inc({ outcome: 'failed' });
    this.#logger.error({ err: err instanceof ConfigErrors ? err.message : (err as Error).message }, 'reload failed (policy, list or config), keeping the previous one');
  }

  /** Validated here first, then all workers or none (reload.ts). */
  async #reloadNode(): Promise<void> {
    let change: ReturnType<typeof configChange>;
    let ruleCount: number;
    try {
      change = configChange(this.#running, this.#reloadConfig());
      ruleCount = (await loadPolicies(change.effective.policies)).rules.length;
      loadLists(change.effective.lists);
    } catch (err) {
      return this.#reloadFailed(err);
    }
    const targets = this.#listening().map((h): ReloadTarget => ({
      name: `worker ${h.slot}`,
      prepare: () => this.#ask(h, 'reload-prepare', { config: change.effective }, RELOAD_TIMEOUT_MS),
      commit: () => this.#ask(h, 'reload-commit', {}),
      abort: () => this.#ask(h, 'reload-abort', {}),
    }));
    const previous = this.#running;
    this.#running = change.effective; // a worker starting meanwhile must get the new set
    const outcome = await reloadAll(targets, previous.workers);
    if (!outcome.ok) {
      this.#running = previous;
      return this.#reloadFailed(new Error(outcome.failures.join('; ')));
    }
    this.#logger.level = this.#running.log.level;
    this.#metrics.policyReloads.inc({ outcome: 'ok' });
    this.#metrics.policyRules.set(ruleCount);
    this.#logger.info({ rules: ruleCount, applied: change.applied, workers: targets.length }, 'configuration and policies reloaded');
    if (change.needsRestart.length > 0) this.#logger.warn({ keys: change.needsRestart }, 'these settings changed but take effect only after a restart; their running values are kept');
  }

  async #stopAll(): Promise<void> {
    this.#supervisor.stop();
    // Stopped while starting: start() stays pending (the process is on its way out), and the
    // workers exiting now are no start failure.
    this.#startup = null;
    const all = [...this.#handles.values()];
    const exited = all.map((h) => new Promise<void>((resolve) => {
      if (h.worker.isDead()) resolve();
      else h.worker.once('exit', () => resolve());
    }));
    for (const h of all) this.#ask(h, 'drain', {}).catch(() => h.worker.process.kill('SIGTERM'));
    const deadline = setTimeout(() => {
      for (const h of all) if (!h.worker.isDead()) h.worker.process.kill('SIGKILL');
    }, this.#running.shutdown.drainTimeoutMs + 5_000);
    await Promise.all(exited);
    clearTimeout(deadline);
    await this.#http?.close();
    await this.#store?.close();
  }
}
