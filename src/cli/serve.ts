/**
 * `postern serve`: the start-up checks (the same preflight as check-config), then the gateway,
 * then signals. Resolves with the exit status when the process should end.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/schema.ts';
import type { Logger } from 'pino';
import type { Gateway } from '../app.ts';
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { VERSION } from '../core/version.ts';
import { startDevBackend } from '../devtools/dev-backend.ts';
import { createLogger } from '../observability/logger.ts';
import { warnIfBackendDown } from '../startup/health.ts';
import { checkedForReload, preflight } from '../startup/preflight.ts';
import { CONFIG_HELP, CONFIG_OPTION, EXIT, loadCommandConfig, parseCommandArgs, type Command } from './command.ts';

const synopsis = 'serve [--config FILE] [--dev-backend]';
const help = `usage: postern ${synopsis}

Runs the gateway: SMTP on \`listen\`, metrics and health on \`metrics.listen\`. Before it starts
it makes the checks check-config makes (config, policies, lists, TLS certificate, listeners)
and exits with status 2 and one line per problem if any fails.

  --dev-backend       also start a development backend on backend.host:backend.port that
                      prints the header block of every message (nothing is stored)
${CONFIG_HELP}

Signals: SIGHUP re-reads the config, policies, lists and the TLS certificate (all or nothing);
SIGTERM and SIGINT drain (new connections get 421, transactions finish within
shutdown.drainTimeoutMs) and exit 0.`;

function logStart(logger: Logger, loaded: LoadedConfig, warnings: readonly string[]): void {
  logger.info({ version: VERSION, node: process.version, config: loaded.file ?? '(embedded defaults)' }, 'starting postern');
  if (loaded.policiesFrom === 'shipped') {
    logger.info({ policies: loaded.config.policies }, 'no policy folder configured and none beside the config: using the shipped default policies (DMARC as published)');
  }
  for (const w of warnings) logger.warn(w);
}

async function serve(configFile: string | undefined, devBackend: boolean): Promise<number> {
  const loaded = loadCommandConfig(configFile);
  // `workers` > 1: the process the operator started is the primary, and each worker runs this
  // command too (src/cluster); a worker runs until its primary stops it (it exits itself).
  if (cluster.isWorker) {
    const { runClusterWorker } = await import('../cluster/serve.ts');
    await runClusterWorker(loaded.config);
    return new Promise<number>(() => undefined);
  }
  const checked = await preflight(loaded);
  const { config } = loaded;
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
  logStart(logger, loaded, checked.warnings);
  const dev = devBackend ? await startDevBackend(config.backend.host, config.backend.port, logger) : null;
  if (dev) logger.warn({ backend: `${config.backend.host}:${config.backend.port}` }, 'development backend started: messages are printed, not stored');

  let gateway: Pick<Gateway, 'start' | 'reload' | 'stop'> & Partial<Pick<Gateway, 'checkBackend'>> | null = null;
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.shutdown.drainTimeoutMs }, 'draining');
    (gateway?.stop() ?? Promise.resolve()).then(async () => {
      await dev?.close();
      logger.info('stopped');
      logger.flush();
      finish(EXIT.ok);
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      finish(EXIT.failed);
    });
  };
  // Installed before listening, so a signal can never find the default handler.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    gateway?.reload().catch(() => undefined); // logged and counted inside
  });
  // loaded after the checks: a refused configuration does not pay for the gateway's libraries
  // checked as at start (file:line in the refusal), short of the files it names: prepare loads those
  const reloadConfig = (): Config => checkedForReload(loadConfig({ file: configFile }));
  if (config.workers > 1) {
    const { createPrimary } = await import('../cluster/serve.ts');
    gateway = await createPrimary(config, { logger, reloadConfig });
  } else {
    const { createGateway } = await import('../app.ts');
    gateway = await createGateway(config, { logger, resources: checked.resources, reloadConfig });
  }
  const running = gateway;
  if (stopping) return finished;
  try {
    await running.start();
  } catch (err) {
    // A port held by another program, a missing privilege: one line naming the key, then out.
    await running.stop().catch(() => undefined);
    await dev?.close();
    logger.flush();
    process.stderr.write(`postern: cannot start: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
  warnIfBackendDown(() => (running.checkBackend ? running.checkBackend() : probeOnce(config)), `${config.backend.host}:${config.backend.port}`, logger);
  return finished;
}

export const command: Command = {
  name: 'serve',
  synopsis,
  summary: 'run the gateway (--dev-backend: also a development backend that prints what it receives)',
  help,
  async run(argv) {
    const args = parseCommandArgs(command, argv, { ...CONFIG_OPTION, 'dev-backend': { type: 'boolean' } });
    if (!args) return EXIT.ok;
    return serve(args.values.config, args.values['dev-backend'] ?? false);
  },
};

/** With workers the primary relays nothing: one backend session of its own, for the start-up warning. */
async function probeOnce(config: Config): Promise<{ ok: true } | { ok: false; error: string }> {
  const { createBackend } = await import('../relay/backend.ts');
  const { backendOptions } = await import('../gateway/components.ts');
  const backend = createBackend(backendOptions(config));
  try {
    return await backend.probe();
  } finally {
    await backend.close();
  }
}
