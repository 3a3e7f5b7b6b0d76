/**
 * `postern reports aggregate [--out DIR]` and `postern reports send [--now]`. Returns the exit
 * status: 0 done, 1 some deliveries deferred, failed or uncertain (details on stderr), 2 a
 * usage or configuration error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig, parseHostPort } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { systemClock } from '../core/clock.ts';
import { ConfigErrors } from '../core/errors.ts';
import type { DmarcPublished } from '../core/facts.ts';
import { createResolver, mailauthResolver } from '../dns/index.ts';
import { createReportStore, createReporting, GENERATOR } from './index.ts';
import { buildReports } from './report.ts';

export const HELP = `usage: postern reports aggregate [--out DIR] [--config FILE]
       postern reports send [--now] [--config FILE]

DMARC aggregate reports (RFC 9990); needs reports.dmarc.enabled.

  aggregate   build the reports of the open period so far, for every report domain, without
              sending or marking anything: the XML on stdout, or one .xml file per report in
              DIR with --out (the paths are printed)
  send        close the periods that ended a minute ago or more and send every report that
              is due to its rua= destinations (pending retries included); --now closes the
              open period first, so what was collected so far is reported now and the period
              goes on from here (a period that ended less than a minute ago still waits)

exit status: 0 done; 1 a delivery was deferred, failed or left uncertain (see stderr); 2 usage
or configuration error.`;

function usage(problem: string): number {
  process.stderr.write(`postern reports: ${problem}\n\n${HELP}\n`);
  return 2;
}

export async function reportsCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, out: { type: 'string' }, now: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [action, ...extra] = positionals;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (action !== 'aggregate' && action !== 'send') return usage(action ? `unknown action "${action}"` : 'aggregate or send?');
  if (extra.length) return usage(`unexpected argument "${extra[0]}"`);
  if (action === 'aggregate' && values.now) return usage('--now belongs to send');
  if (action === 'send' && values.out) return usage('--out belongs to aggregate');

  let config: Config;
  try {
    config = loadConfig({ file: values.config }).config;
  } catch (err) {
    if (err instanceof ConfigErrors) return usage(`invalid configuration:\n${err.message}`);
    throw err;
  }
  if (!config.reports.dmarc.enabled) return usage('reports.dmarc.enabled is false in this configuration: nothing is collected');
  try {
    return action === 'aggregate' ? await aggregate(config, values.out) : await send(config, values.now ?? false);
  } catch (err) {
    if (err instanceof ConfigErrors) return usage(`invalid configuration:\n${err.message}`);
    process.stderr.write(`postern reports: ${(err as Error).message}\n`);
    return 1;
  }
}

async function aggregate(config: Config, out: string | undefined): Promise<number> {
  const cfg = config.reports.dmarc;
  const store = createReportStore(config, systemClock);
  try {
    const now = systemClock.now();
    const written: string[] = [];
    for (const domain of await store.domains()) {
      for (const p of await store.openPeriods(domain)) {
        if (!p.policy || p.rows.size === 0) continue;
        const parts = buildReports({ domain, published: JSON.parse(p.policy) as DmarcPublished, begin: p.begin, end: Math.min(now, p.periodEnd), rows: p.rows },
          { orgName: cfg.orgName, email: cfg.email, extraContact: cfg.extraContact, maxReportBytes: cfg.maxReportBytes, generator: GENERATOR });
        for (const part of parts) {
          if (!out) {
            process.stdout.write(part.xml);
            continue;
          }
          fs.mkdirSync(out, { recursive: true });
          const file = path.join(out, part.filename.replace(/\.gz$/, ''));
          fs.writeFileSync(file, part.xml);
          written.push(file);
        }
      }
    }
    if (out) process.stdout.write(written.map((f) => `${f}\n`).join(''));
    return 0;
  } finally {
    await store.close();
  }
}

async function send(config: Config, now: boolean): Promise<number> {
  const logger = pino({ level: config.log.level === 'silent' ? 'silent' : 'info' }, pino.destination(2));
  const dns = createResolver({ servers: config.dns.servers.map((s) => parseHostPort(s, 53)), timeoutMs: config.dns.timeoutMs, attempts: config.dns.attempts });
  const reporting = createReporting(config, { clock: systemClock, logger, resolver: mailauthResolver(dns), metrics: null });
  try {
    const s = await reporting.sender.run({ closeOpen: now, ignoreBackoff: true });
    process.stdout.write(`reports generated ${s.generated}, sent ${s.sent}, deferred ${s.deferred}, failed ${s.failed}, refused ${s.refused}, uncertain ${s.uncertain}${s.busy ? `, ${s.busy} busy on another node` : ''}\n`);
    return s.deferred + s.failed + s.uncertain > 0 ? 1 : 0;
  } finally {
    await reporting.close();
    dns.close();
    logger.flush();
  }
}
