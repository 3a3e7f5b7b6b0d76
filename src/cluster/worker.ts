/**
 * A worker process of a node: one gateway on the listeners the primary shares (node:cluster),
 * without an HTTP endpoint of its own (the primary serves /metrics and /readyz for the node and
 * asks the workers over IPC). It runs the configuration the primary sends, so a worker started
 * after a crash runs what its siblings run, SIGHUPs included (the policy and list files are
 * read from disk as they are then). Rate limits come from the primary's memory store, or from
 * Redis when configured; connection limits are the node's (slots.ts).
 */
import cluster from 'node:cluster';
import path from 'node:path';
import type { Logger } from 'pino';
import { createGateway, type Gateway } from '../app.ts';
import { deepFreeze } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { ConfigErrors } from '../core/errors.ts';
import { workerShare } from '../pipeline/byte-budget.ts';
import { redisConfigured } from '../reputation/store.ts';
import { IpcChannel } from './ipc.ts';
import { createIpcStore } from './ipc-store.ts';
import { slotClient } from './slots.ts';
import { SLOT_ENV } from './primary.ts';

/** How long a worker waits for the primary's answer to a store or slot request. */
const IPC_TIMEOUT_MS = 2_000;

/**
 * The config as a worker runs it: no HTTP listener (the primary has it), its share of the
 * in-flight budget, and its own decisions.file (one writer per file: `decisions.jsonl` becomes
 * `decisions.w1.jsonl`; replay reads them all).
 */
function forWorker(config: Config): Config {
  const own = structuredClone(config);
  if (own.decisions.file) own.decisions.file = perWorkerFile(own.decisions.file, workerSlot());
  // the in-flight byte budget is the node's: each worker holds its share (no spool, one heap
  // each), never less than one message of the largest size
  Object.assign(own.limits, workerShare(config.limits, config.workers));
  return deepFreeze({ ...own, metrics: { ...config.metrics, listen: '' } });
}

export interface WorkerOptions {
  readonly logger: Logger;
}

export async function runWorker({ logger }: WorkerOptions): Promise<void> {
  await new WorkerProcess(logger).run();
}

class WorkerProcess {
  readonly #logger: Logger;
  readonly #channel: IpcChannel;
  #gateway: Gateway | null = null;
  #prepared: { commit(): void } | null = null;
  #stopping: Promise<void> | null = null;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#channel = new IpcChannel({
      send: (message) => process.send!(message, undefined, undefined, (err: Error | null) => {
        if (err) this.#channel.close();
      }),
      onRequest: (kind, body) => this.#answer(kind, body),
    });
  }

  /** Talks to the primary, then runs a gateway on the configuration it sends; exits when told to drain or when that fails. */
  async run(): Promise<void> {
    const channel = this.#channel;
    process.on('message', (message) => channel.receive(message));
    // node:cluster ends a worker whose primary is gone ('disconnect'); nothing waits meanwhile.
    process.on('disconnect', () => channel.close());
    // The primary coordinates the node: reloads (all workers or none) and draining (it tells each
    // worker). A signal sent to the whole process group (systemd's KillMode=control-group,
    // Ctrl-C in a terminal) reaches the primary as well, so workers ignore it rather than end
    // early (SIGHUP's default action) or look like a crash to the primary.
    for (const signal of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.on(signal, () => undefined);

    const { config } = await channel.request<{ config: Config }>('hello', { pid: process.pid }, 30_000);
    const own = forWorker(config);
    try {
      this.#gateway = await createGateway(own, {
        logger: this.#logger,
        ...(redisConfigured(own.redis) ? {} : { store: createIpcStore(channel, { timeoutMs: IPC_TIMEOUT_MS }) }),
        admitConnection: slotClient(channel, IPC_TIMEOUT_MS),
      });
      if (this.#stopping) return;
      const { smtp } = await this.#gateway.start();
      channel.notify('listening', { smtp });
    } catch (err) {
      // The primary reports it (and gives up, or retries after a crash later on).
      const error = err instanceof ConfigErrors ? `invalid policy:\n${err.message}` : (err as Error).message;
      await channel.request('failed', { error }, 2_000).catch(() => undefined);
      process.exit(1);
    }
  }

  /** The primary's requests. */
  #answer(kind: string, body: unknown): unknown {
    const gateway = this.#gateway;
    switch (kind) {
      case 'metrics': return gateway?.registry.getMetricsAsJSON() ?? [];
      case 'readiness': return gateway ? gateway.readiness() : [{ name: 'gateway', ok: false, error: 'starting' }];
      case 'reload-prepare': return this.#prepare((body as { config: Config }).config);
      case 'reload-commit': return this.#commit();
      case 'reload-abort':
        this.#prepared = null;
        return true;
      case 'drain':
        void this.#stop('primary');
        return true;
      default: throw new Error(`unknown request ${kind}`);
    }
  }

  async #prepare(config: Config): Promise<boolean> {
    if (!this.#gateway) throw new Error('not started');
    try {
      this.#prepared = await this.#gateway.prepareReload(forWorker(config), { announce: false });
    } catch (err) {
      // logged and counted by the gateway; the primary is told why
      throw new Error(err instanceof ConfigErrors ? err.message : (err as Error).message, { cause: err });
    }
    return true;
  }

  #commit(): boolean {
    if (!this.#prepared) throw new Error('no reload prepared');
    this.#prepared.commit();
    this.#prepared = null;
    return true;
  }

  #stop(why: string): Promise<void> {
    this.#stopping ??= (async () => {
      this.#logger.info({ signal: why }, 'worker draining');
      await this.#gateway?.stop();
      // Our listener is closed, but with round-robin scheduling (NODE_CLUSTER_SCHED_POLICY=rr)
      // node:cluster's primary may have handed us a connection before it learnt that: IPC keeps
      // order, so once the primary answers this, every such hand-off has reached us and been
      // refused back to a worker still listening.
      await this.#channel.request('bye', {}, 2_000).catch(() => undefined);
      this.#logger.info('worker stopped');
      this.#logger.flush();
      process.exit(0);
    })();
    return this.#stopping;
  }
}

/** This worker's slot (1…workers), as the primary numbers them. */
function workerSlot(): number {
  return Number(process.env[SLOT_ENV] ?? cluster.worker?.id ?? 0);
}

/** "/var/log/postern/decisions.jsonl" → "/var/log/postern/decisions.w2.jsonl". */
export function perWorkerFile(file: string, slot: number): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}.w${slot}${ext}`;
}
