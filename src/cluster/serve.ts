/**
 * `postern serve` with `workers` > 1: this process becomes the primary (primary.ts), and the
 * processes node:cluster starts from it (the same command line) become workers (worker.ts).
 * The primary answers signals for the node: SIGTERM/SIGINT drain all, SIGHUP reloads all.
 * What main.ts prints and how it exits stay the same as with one process.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/schema.ts';
import { ConfigErrors } from '../core/errors.ts';
import { startDevBackend } from '../devtools/dev-backend.ts';
import { createLogger, stdoutWriter } from '../observability/logger.ts';
import { SLOT_ENV, startPrimary, type Primary } from './primary.ts';
import { runWorker } from './worker.ts';

/** True when `serve` runs as a cluster: a worker, or a primary of more than one worker. */
export function clustered(config: Config): boolean {
  return cluster.isWorker || config.workers > 1;
}

export interface ServeClusterOptions {
  readonly config: Config;
  /** The config file read, for the log (null: embedded defaults). */
  readonly file: string | null;
  readonly devBackend: boolean;
  readonly reloadConfig: () => Config;
  /** main.ts's way out: message on stderr, exit status. */
  readonly fail: (message: string, code?: number) => never;
}

export async function serveCluster(opts: ServeClusterOptions): Promise<void> {
  const { config } = opts;
  if (cluster.isWorker) {
    const slot = Number(process.env[SLOT_ENV] ?? cluster.worker?.id ?? 0);
    return runWorker({ logger: createLogger({ level: config.log.level, pretty: config.log.pretty, base: { worker: slot } }) });
  }
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
  logger.info({ config: opts.file ?? '(embedded defaults)', workers: config.workers }, 'starting postern');
  const dev = opts.devBackend ? await startDevBackend(config.backend.host, config.backend.port, logger).catch((err: Error) => opts.fail(err.message, 1)) : null;
  if (dev) logger.warn({ backend: `${config.backend.host}:${config.backend.port}` }, 'development backend started: messages are printed, not stored');

  let primary: Primary | null = null;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.shutdown.drainTimeoutMs }, 'draining');
    (primary?.stop() ?? Promise.resolve()).then(async () => {
      await dev?.close();
      logger.info('stopped');
      logger.flush();
      process.exit(0);
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  // Installed before the workers start, so a signal can never find the default handler.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void primary?.reload());

  const stderr = (text: string): void => void process.stderr.write(text);
  try {
    primary = await startPrimary({ config, logger, reloadConfig: opts.reloadConfig, stdout: stdoutWriter(config.log.pretty), stderr });
  } catch (err) {
    if (err instanceof ConfigErrors) opts.fail(`invalid policy:\n${err.message}`, 1);
    throw err;
  }
  let addresses: Awaited<Primary['started']>;
  try {
    addresses = await primary.started;
  } catch (err) {
    if (stopping) return;
    await primary.stop();
    opts.fail((err as Error).message, 1);
  }
  if (stopping) return;
  logger.info({ ...addresses, workers: config.workers, domains: config.domains, backend: `${config.backend.host}:${config.backend.port}`, policies: config.policies }, 'postern listening');
}
