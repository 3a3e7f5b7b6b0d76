/**
 * `reports.dmarc`: DMARC aggregate reports (RFC 9990) and, under `failure`, failure reports
 * (RFC 9991). Both off by default. Merged into config/schema.ts as one top-level `reports`
 * key; the cross-field checks (what `enabled` needs) live in reportsProblems() so check-config
 * and serve refuse the same things.
 */
import { flag, size, wholeDuration } from '../config/values.ts';
import path from 'node:path';
import { z } from 'zod';

const address = z.string().regex(/^[^\s@<>()",;]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$/, 'expected a plain mail address (local@domain)');
const domain = z.string().regex(/^[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$/, 'expected a domain name');

/** A header field name (RFC 5322 §3.6.8: printable ASCII except ":"). */
const fieldName = z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, 'expected a header field name, e.g. Subject');

/** `reports.dmarc.failure`: failure reports (RFC 9991), off by default; see src/reports/failure/. */
const failureReportsSchema = z.strictObject({
  enabled: flag().default(false).describe('Send DMARC failure reports (RFC 9991) to the ruf= mailto: addresses of domains whose mail failed as their fo= asks: the header only, local parts of addresses replaced, never the body'),
  perDomainPerHour: z.number().int().min(1).max(1000).default(5)
    .describe('Failure reports per reported domain (the DMARC policy domain): a burst of this many, then one every 60/N minutes; shared by the node\'s workers, and by every node with Redis; the rest are dropped and counted'),
  ratePerMinute: z.number().int().min(1).max(600).default(10).describe('Failure reports leaving this process per minute at most, all domains together'),
  queueSize: z.number().int().min(1).max(10_000).default(100)
    .describe('Failure reports waiting in this process at most (in memory: a restart loses them, they are never sent twice); more are dropped and counted'),
  omitHeaders: z.array(fieldName).default([]).describe('Header fields of the failed message left out of failure reports, e.g. [Subject] (addresses are redacted in every field kept)'),
}).prefault({});

export const dmarcReportsSchema = z.strictObject({
  enabled: flag().default(false).describe('Collect DMARC results for domains that publish rua= and send them aggregate reports (RFC 9990)'),
  orgName: z.string().default('').describe('Reporting organisation (report_metadata org_name); required when enabled'),
  email: z.union([address, z.literal('')]).default('').describe('Our reporting address: report_metadata email, the From: and MAIL FROM of aggregate and failure reports; its domain is the Submitter; required when either is enabled'),
  extraContact: z.string().default('').describe('Extra contact information written into each report (optional)'),
  periodHours: wholeDuration('h', 1).refine((h) => h <= 24 && 24 % h === 0, 'one of 1, 2, 3, 4, 6, 8, 12, 24 hours (periods align to UTC days)').default(24)
    .describe('Length of a reporting period in hours; periods start at 00:00 UTC (RFC 9990: one UTC day is the norm)'),
  relay: z.strictObject({
    host: z.string().default('').describe('SMTP relay for reports; empty = backend.host'),
    port: z.number().int().min(0).max(65535).default(0).describe('Relay port; 0 = backend.port'),
  }).prefault({}),
  signing: z.strictObject({
    domain: z.union([domain, z.literal('')]).default('').describe('DKIM d= for reports (empty = reports are not signed)'),
    selector: z.string().regex(/^[A-Za-z0-9._-]*$/, 'expected a DKIM selector').default('').describe('DKIM selector for reports'),
    keyFile: z.string().default('').describe('PEM private key (RSA or Ed25519) for signing reports, relative to the config file'),
  }).prefault({}),
  schedule: flag().default(true).describe('Send from inside `serve` (every 5 minutes, one node at a time); false = only `postern reports send` sends (e.g. from cron)'),
  ratePerMinute: z.number().int().min(1).default(30).describe('Reports sent per minute at most, across all domains (pacing protects our own sending reputation)'),
  maxReportBytes: size(1024).default(5_000_000).describe('Largest gzip\'d report, bytes or 5MB; more records are split over several reports'),
  maxAgeHours: wholeDuration('h', 1).default(72).describe('A report not delivered this long after its period ended is given up (counted as failed)'),
  stateDir: z.string().default('/var/lib/postern').describe('Folder of the local report store (SQLite) used without redis.url, relative to the config file'),
  failure: failureReportsSchema,
}).prefault({});

export const reportsConfigSchema = z.strictObject({ dmarc: dmarcReportsSchema }).prefault({});

export type DmarcReportsConfig = z.output<typeof dmarcReportsSchema>;

/** Problems with an enabled configuration, as [key, message]; empty when fine or disabled. */
export function reportsProblems(cfg: DmarcReportsConfig): Array<[string, string]> {
  if (!cfg.enabled && !cfg.failure.enabled) return [];
  // aggregate and failure reports share the From address, the relay and the signing key
  const because = cfg.enabled ? 'reports.dmarc.enabled' : 'reports.dmarc.failure.enabled';
  const out: Array<[string, string]> = [];
  if (cfg.enabled && !cfg.orgName.trim()) out.push(['reports.dmarc.orgName', 'required when reports.dmarc.enabled is true']);
  if (!cfg.email) out.push(['reports.dmarc.email', `required when ${because} is true`]);
  const signing = [cfg.signing.domain, cfg.signing.selector, cfg.signing.keyFile];
  if (signing.some(Boolean) && !signing.every(Boolean)) {
    out.push(['reports.dmarc.signing', 'domain, selector and keyFile go together (or leave all three empty)']);
  }
  return out;
}

/** Makes the relative paths of the section absolute against `base` (the config file's folder). */
export function resolveReportPaths(cfg: DmarcReportsConfig, base: string): void {
  cfg.stateDir = path.resolve(base, cfg.stateDir);
  if (cfg.signing.keyFile) cfg.signing.keyFile = path.resolve(base, cfg.signing.keyFile);
}
