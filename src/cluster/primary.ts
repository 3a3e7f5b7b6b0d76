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
import { createMetrics } from '../observability/metrics.ts';
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
  const { logger } = opts;
  let running = config;
  // Workers' output reaches stdout/stderr through here, whole lines at a time (output.ts).
  const stdout = stdoutWriter(config.log.pretty);
  const stderr = (text: string): void => void process.stderr.write(text);
  const registry = new Registry();
  const metrics = createMetrics(registry);

  // The primary validates what the workers will load, so a broken set fails here, once.
  metrics.policyReloads.inc({ outcome: 'failed' }, 0);
  const rules = await loadPolicies(running.policies).catch((err: unknown) => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    throw err;
  });
  loadLists(running.lists);
  metrics.policyReloads.inc({ outcome: 'ok' });
  metrics.policyRules.set(rules.rules.length);
  metrics.storeUp.set(1);

  const store: RateStore | null = redisConfigured(running.redis) ? null : createStoreFromConfig(running);
  const slots = createSlotBook(() => running.limits);
  const handles = new Map<number, Handle>();
  let startup: { resolve: () => void; reject: (err: Error) => void } | null = null;
  const started = new Promise<void>((resolve, reject) => (startup = { resolve, reject }));
  started.catch(() => undefined);

  const listening = (): Handle[] => [...handles.values()].filter((h) => h.smtp !== null);
  const countWorkers = (): void => {
    metrics.workers.set(listening().length);
    if (startup && listening().length === running.workers) {
      startup.resolve();
      startup = null;
    }
  };
  const failStartup = (message: string): void => {
    startup?.reject(new Error(message));
    startup = null;
  };

  const onRequest = (handle: Handle) => (kind: string, body: unknown): unknown => {
    switch (kind) {
      case 'hello': return { config: running };
      case 'bye': return true;
      case STORE_REQUEST:
        if (!store) throw new Error('no memory store here: Redis is configured');
        return serveStoreRequest(store, body);
      case SLOT_REQUEST: return slots.acquire(handle.slot, (body as { ip: string }).ip);
      case 'failed':
        logger.error({ worker: handle.slot, error: (body as { error: string }).error }, 'worker failed to start');
        failStartup((body as { error: string }).error);
        return true;
      default: throw new Error(`unknown request ${kind}`);
    }
  };
  const onNote = (handle: Handle) => (kind: string, body: unknown): void => {
    if (kind === STORE_LEARN && store) serveStoreLearn(store, body);
    else if (kind === SLOT_RELEASE) slots.release((body as { id: number }).id);
    else if (kind === 'listening') {
      handle.smtp = (body as { smtp: Handle['smtp'] }).smtp;
      countWorkers();
    }
  };

  // Workers accept from the shared listening socket themselves (SCHED_NONE) instead of the
  // primary accepting each connection and handing it over (node's round robin): that hand-off
  // cost about 0.4 ms of CPU per fresh connection in the bench, and SMTP clients mostly open a
  // connection per message. The kernel spreads the connections; NODE_CLUSTER_SCHED_POLICY=rr
  // brings back node's round robin.
  if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: withRuntimeFlags(process.execArgv) });
  const supervisor = new Supervisor<Handle>({
    count: running.workers,
    start(slot, exited) {
      const worker = cluster.fork({ [SLOT_ENV]: String(slot) });
      const handle: Handle = {
        slot, worker, smtp: null,
        channel: new IpcChannel({
          send: (message) => worker.send(message, undefined, (err: Error | null) => {
            if (err) handle.channel.close();
          }),
          onRequest: (kind, body) => onRequest(handle)(kind, body),
          onNote: (kind, body) => onNote(handle)(kind, body),
        }),
      };
      handles.set(slot, handle);
      worker.on('message', (message) => handle.channel.receive(message));
      forwardLines(worker.process.stdout!, stdout);
      forwardLines(worker.process.stderr!, stderr);
      worker.on('exit', (code, signal) => {
        handle.channel.close();
        if (handles.get(slot) === handle) handles.delete(slot);
        slots.releaseOwner(slot);
        countWorkers();
        if (startup) failStartup(`worker ${slot} exited during start (${signal ?? `exit code ${code}`})`);
        exited(code, signal);
      });
      return handle;
    },
    onRestart(slot, delayMs, code, signal) {
      metrics.workerRestarts.inc();
      logger.error({ worker: slot, code, signal, restartInMs: delayMs }, 'worker exited; starting a new one');
    },
  });
  supervisor.start();

  const ask = async <T>(handle: Handle, kind: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> =>
    handle.channel.request<T>(kind, body, timeoutMs);

  const readiness = (): ReadinessCheck[] => Array.from({ length: running.workers }, (_, i) => i + 1).map((slot) => ({
    name: `worker-${slot}`,
    async check() {
      const handle = handles.get(slot);
      if (!handle?.smtp) return { ok: false as const, error: handle ? 'starting' : 'not running (being started again)' };
      const results = await ask<CheckResult[]>(handle, 'readiness', {});
      const bad = results.filter((r) => !r.ok);
      if (bad.length > 0) return { ok: false as const, error: bad.map((r) => `${r.name}: ${'error' in r ? r.error : ''}`).join('; ') };
      const degraded = results.flatMap((r) => (r.ok && r.degraded ? [`${r.name}: ${r.degraded}`] : []));
      return degraded.length > 0 ? { ok: true as const, degraded: degraded.join('; ') } : { ok: true as const };
    },
  }));

  const nodeMetrics = {
    contentType: registry.contentType,
    async metrics(): Promise<string> {
      const fromWorkers = await Promise.all(listening().map((h) => ask<Awaited<ReturnType<Registry['getMetricsAsJSON']>>>(h, 'metrics', {}).catch(() => null)));
      return (await aggregateMetrics(registry, fromWorkers.filter((m) => m !== null))).metrics();
    },
  };

  let http: HttpEndpoint | null = null;
  const startedAll = (async () => {
    await started;
    if (running.metrics.listen) http = await startHttp(running.metrics.listen, nodeMetrics, readiness);
    const addresses = { smtp: listening()[0]!.smtp!, http: http?.port ?? null };
    logger.info({ ...addresses, workers: running.workers, domains: running.domains, backend: `${running.backend.host}:${running.backend.port}`, policies: running.policies, rules: rules.rules.length }, 'postern listening');
    return addresses;
  })();
  startedAll.catch(() => undefined); // start() hands the failure on

  let reloading: Promise<void> = Promise.resolve();
  const reloadFailed = (err: unknown): void => {
    metrics.policyReloads.inc({ outcome: 'failed' });
    logger.error({ err: err instanceof ConfigErrors ? err.message : (err as Error).message }, 'reload failed (policy, list or config), keeping the previous one');
  };

  /** Validated here first, then all workers or none (reload.ts). */
  async function reloadNode(): Promise<void> {
    let change: ReturnType<typeof configChange>;
    let ruleCount: number;
    try {
      change = configChange(running, opts.reloadConfig());
      ruleCount = (await loadPolicies(change.effective.policies)).rules.length;
      loadLists(change.effective.lists);
    } catch (err) {
      return reloadFailed(err);
    }
    const targets = listening().map((h): ReloadTarget => ({
      name: `worker ${h.slot}`,
      prepare: () => ask(h, 'reload-prepare', { config: change.effective }, RELOAD_TIMEOUT_MS),
      commit: () => ask(h, 'reload-commit', {}),
      abort: () => ask(h, 'reload-abort', {}),
    }));
    const previous = running;
    running = change.effective; // a worker starting meanwhile must get the new set
    const outcome = await reloadAll(targets, previous.workers);
    if (!outcome.ok) {
      running = previous;
      return reloadFailed(new Error(outcome.failures.join('; ')));
    }
    logger.level = running.log.level;
    metrics.policyReloads.inc({ outcome: 'ok' });
    metrics.policyRules.set(ruleCount);
    logger.info({ rules: ruleCount, applied: change.applied, workers: targets.length }, 'configuration and policies reloaded');
    if (change.needsRestart.length > 0) logger.warn({ keys: change.needsRestart }, 'these settings changed but take effect only after a restart; their running values are kept');
  }

  let stopping: Promise<void> | null = null;
  async function stopAll(): Promise<void> {
    supervisor.stop();
    // Stopped while starting: start() stays pending (the process is on its way out), and the
    // workers exiting now are no start failure.
    startup = null;
    const all = [...handles.values()];
    const exited = all.map((h) => new Promise<void>((resolve) => {
      if (h.worker.isDead()) resolve();
      else h.worker.once('exit', () => resolve());
    }));
    for (const h of all) ask(h, 'drain', {}).catch(() => h.worker.process.kill('SIGTERM'));
    const deadline = setTimeout(() => {
      for (const h of all) if (!h.worker.isDead()) h.worker.process.kill('SIGKILL');
    }, running.shutdown.drainTimeoutMs + 5_000);
    await Promise.all(exited);
    clearTimeout(deadline);
    await http?.close();
    await store?.close();
  }

  return {
    start: () => startedAll,
    reload() {
      reloading = reloading.then(() => started).then(reloadNode, () => undefined);
      return reloading;
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
