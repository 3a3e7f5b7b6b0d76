#!/usr/bin/env node
/**
 * The postern CLI: serve | check-config | verify. Parses arguments, loads the config, calls
 * createGateway, handles signals. Everything else lives in the modules it calls.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, parseHostPort } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { ConfigErrors } from './core/errors.ts';
import { createGateway, type Gateway } from './app.ts';
import { describeRuleSet, loadPolicies } from './policy/load.ts';
import { startDevBackend } from './devtools/dev-backend.ts';
import { createLogger } from './observability/logger.ts';
import { verifyMessage } from './devtools/verify.ts';
import { reputationCommand } from './devtools/reputation-cli.ts';
import { reportsCommand } from './reports/cli.ts';
import { checkReporting } from './reports/index.ts';
import { replayCommand } from './policy/cli/replay.ts';
import { policyCommand } from './policy/cli/policy.ts';
import { explainCommand, explainVerified } from './policy/cli/explain.ts';
import { policyToolingChecks } from './policy/cli/check.ts';

const USAGE = `usage: postern <command> [options]

commands:
  serve [--config FILE] [--dev-backend]   run the gateway (--dev-backend: also start a development
                                          backend that prints what it receives)
  check-config [--config FILE]            validate the config and the policy files, print a summary
  verify FILE.eml --ip IP --helo NAME --sender ADDR [--config FILE] [--explain]
                                          authenticate one message (SPF, DKIM, ARC, DMARC) with the
                                          configured DNS, print Authentication-Results and the verdict
  reputation show|reset <ip|cidr|domain|address> [--config FILE]
                                          show or clear a sender's score and rate buckets in Redis
  reports aggregate [--out DIR] [--config FILE]
                                          DMARC aggregate reports of the open period, not sent
  reports send [--now] [--config FILE]    send the DMARC aggregate reports that are due

  replay --policies DIR [--json] [--show N] FILE...
                                          decide recorded decisions (logs, decisions.file, .gz)
                                          again under a candidate policy, print what changes
  policy test [DIR] | policy schema       run the policy tests (*.test.yaml); print the JSON Schema
  explain FILE.eml --ip IP … | explain --record FILE [--session ID]
                                          each rule in order, why it matched or not

The config file is --config, else $POSTERN_CONFIG, else ./postern.yaml if present, else the
embedded defaults; every key can be overridden with POSTERN_* environment variables.`;

function fail(message: string, code = 2): never {
  process.stderr.write(`postern: ${message}\n`);
  process.exit(code);
}

function load(file: string | undefined): { config: Config; file: string | null } {
  try {
    return loadConfig({ file });
  } catch (err) {
    if (err instanceof ConfigErrors) fail(`invalid configuration:\n${err.message}`, 1);
    throw err;
  }
}

async function serve(file: string | undefined, devBackend: boolean): Promise<void> {
  const { config, file: used } = load(file);
  if (config.domains.length === 0) fail('no recipient domains configured: set `domains` in the config file or POSTERN_DOMAINS=example.com (Postern refuses to run as an open relay)', 1);
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
  logger.info({ config: used ?? '(embedded defaults)' }, 'starting postern');
  const dev = devBackend ? await startDevBackend(config.backend.host, config.backend.port, logger).catch((err: Error) => fail(err.message, 1)) : null;
  if (dev) logger.warn({ backend: `${config.backend.host}:${config.backend.port}` }, 'development backend started: messages are printed, not stored');
  let gateway: Gateway | null = null;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.shutdown.drainTimeoutMs }, 'draining');
    (gateway?.stop() ?? Promise.resolve()).then(async () => {
      await dev?.close();
      logger.info('stopped');
      logger.flush();
      process.exit(0);
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  // Installed before listening, so a signal can never find the default handler.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    gateway?.reload().catch(() => undefined); // logged and counted inside
  });
  try {
    gateway = await createGateway(config, { logger, reloadConfig: () => loadConfig({ file }).config });
  } catch (err) {
    if (err instanceof ConfigErrors) fail(`invalid policy:\n${err.message}`, 1);
    throw err;
  }
  if (stopping) return;
  await gateway.start().catch((err: Error) => fail(err.message, 1));
}

async function checkConfig(file: string | undefined): Promise<void> {
  const { config, file: used } = load(file);
  try {
    const ruleSet = await loadPolicies(config.policies);
    process.stdout.write(`config: ${used ?? '(embedded defaults)'}: ok\n`);
    if (config.domains.length === 0) process.stdout.write('warning: no recipient domains configured; `serve` needs `domains`\n');
    process.stdout.write(describeRuleSet(ruleSet) + '\n');
    for (const l of config.listen) parseHostPort(l);
    const reports = checkReporting(config);
    if (reports) process.stdout.write(`${reports}\n`);
    const tooling = await policyToolingChecks(config, ruleSet); // policy tests, decisions.file
    process.stdout.write(tooling.text);
    if (!tooling.ok) process.exitCode = 1;
  } catch (err) {
    if (err instanceof ConfigErrors) fail(`invalid policy:\n${err.message}`, 1);
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  // Commands that parse their own arguments and return their exit status.
  const tooling: Record<string, ((argv: string[]) => Promise<number>) | undefined> = { replay: replayCommand, policy: policyCommand, explain: explainCommand, reports: reportsCommand };
  const own = tooling[command];
  if (own) {
    process.exitCode = await own(rest);
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        'dev-backend': { type: 'boolean' },
        ip: { type: 'string' },
        helo: { type: 'string' },
        sender: { type: 'string' },
        explain: { type: 'boolean' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  switch (command) {
    case 'serve':
      return serve(values.config, values['dev-backend'] ?? false);
    case 'check-config':
      return checkConfig(values.config);
    case 'verify': {
      const file = positionals[0];
      if (!file || !values.ip) fail(`verify needs FILE.eml and --ip\n\n${USAGE}`);
      if (!fs.existsSync(file)) fail(`no such file: ${file}`);
      const { config } = load(values.config);
      const out = await verifyMessage(config, { file, ip: values.ip, helo: values.helo ?? '', sender: values.sender ?? '' });
      process.stdout.write(out.text);
      if (values.explain) process.stdout.write('\n' + await explainVerified(config.policies, out.facts));
      process.exitCode = 0;
      return;
    }
    case 'reputation': {
      const [action, target] = positionals;
      if (!action || !target) fail(`reputation needs show|reset and a target\n\n${USAGE}`);
      const { config } = load(values.config);
      try {
        process.stdout.write(await reputationCommand(config, action, target));
      } catch (err) {
        fail((err as Error).message, 1);
      }
      return;
    }
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`postern: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
