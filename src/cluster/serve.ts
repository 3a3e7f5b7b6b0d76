/**
 * `postern serve` with `workers` > 1: the process the operator starts becomes the primary
 * (createPrimary, driven by main.ts as it drives a single gateway: start, SIGHUP reload,
 * SIGTERM stop), and the processes node:cluster starts from it, with the same command line,
 * become workers (worker.ts).
 */
import cluster from 'node:cluster';
import type { Config } from '../config/schema.ts';
import { createLogger } from '../observability/logger.ts';
import { SLOT_ENV } from './primary.ts';
import { runWorker } from './worker.ts';

export { createPrimary } from './primary.ts';

/** This process is a worker of a primary (not the process the operator started). */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** Runs this process as a worker until the primary tells it to stop. */
export function runClusterWorker(config: Config): Promise<void> {
  const slot = Number(process.env[SLOT_ENV] ?? cluster.worker?.id ?? 0);
  return runWorker({ logger: createLogger({ level: config.log.level, pretty: config.log.pretty, base: { worker: slot } }) });
}
