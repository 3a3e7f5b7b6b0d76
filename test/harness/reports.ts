/**
 * DMARC aggregate report helpers for tests: the CLI as a child process, the report mails the
 * sink received taken apart (MIME → gzip → XML → records), and schema validation with xmllint
 * against ../shared/conformance/dmarc-2.0.xsd (which must exist: a missing schema fails the
 * test, it never skips it).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { SinkMessage } from './sink.ts';
import { headerValue } from './world.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'src/main.ts');
export const DMARC_XSD = path.resolve(ROOT, '../shared/conformance/dmarc-2.0.xsd');
const execFileP = promisify(execFile);

export interface CliResult { readonly code: number | null; readonly stdout: string; readonly stderr: string }

/** `postern <args>` as a child process with only PATH and `env` (no POSTERN_* of the caller). */
export function startCli(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return startCli(args, env).done;
}

export interface ReportRecord { readonly sourceIp: string; readonly count: number; readonly disposition: string; readonly headerFrom: string; readonly dkim: string; readonly spf: string }

export interface ReceivedReport {
  readonly to: string;
  readonly from: string | null;
  readonly subject: string | null;
  readonly contentType: string;
  readonly filename: string;
  readonly xml: string;
  readonly records: ReportRecord[];
  readonly raw: Buffer;
}

const tag = (xml: string, name: string): string => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? '';

/** The report in a mail the sink received: the application/gzip part, unpacked. */
export function parseReportMail(m: SinkMessage): ReceivedReport {
  const text = m.raw.toString('latin1');
  const part = /Content-Type: (application\/gzip); name="([^"]+)"\r\nContent-Transfer-Encoding: base64\r\n[^\r\n]*\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(text);
  assert.ok(part, `no application/gzip part in:\n${text.slice(0, 2000)}`);
  const xml = gunzipSync(Buffer.from(part[3]!.replace(/\r\n/g, ''), 'base64')).toString('utf8');
  const records = [...xml.matchAll(/<record>([\s\S]*?)<\/record>/g)].map(([, r]) => ({
    sourceIp: tag(r!, 'source_ip'), count: Number(tag(r!, 'count')), disposition: tag(r!, 'disposition'), headerFrom: tag(r!, 'header_from'),
    dkim: /<policy_evaluated>[\s\S]*?<dkim>([^<]*)<\/dkim>/.exec(r!)?.[1] ?? '', spf: /<policy_evaluated>[\s\S]*?<spf>([^<]*)<\/spf>/.exec(r!)?.[1] ?? '',
  }));
  return { to: m.rcptTo[0] ?? '', from: headerValue(m.raw, 'From'), subject: headerValue(m.raw, 'Subject'), contentType: part[1]!, filename: part[2]!, xml, records, raw: m.raw };
}

/** Messages counted per "source ip|disposition". */
export function countsOf(records: readonly ReportRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) out[`${r.sourceIp}|${r.disposition}`] = (out[`${r.sourceIp}|${r.disposition}`] ?? 0) + r.count;
  return out;
}

/** xmllint --schema dmarc-2.0.xsd; resolves with xmllint's output, rejects (assertion) when invalid. */
export async function assertSchemaValid(xml: string): Promise<void> {
  assert.ok(fs.existsSync(DMARC_XSD), `the RFC 9990 schema is missing: ${DMARC_XSD} (shared/conformance must sit beside the repository)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-xsd-'));
  try {
    const file = path.join(dir, 'report.xml');
    fs.writeFileSync(file, xml);
    const r = await execFileP('xmllint', ['--noout', '--schema', DMARC_XSD, file]).then(
      (ok) => ({ code: 0, out: ok.stderr }), (err: { code?: number; stderr?: string }) => ({ code: err.code ?? 1, out: err.stderr ?? '' }));
    assert.equal(r.code, 0, `xmllint: ${r.out}\n${xml}`);
    assert.match(r.out, /validates/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The reports among the sink's messages (those from our reporting address). */
export function reportsIn(messages: readonly SinkMessage[], reporter: string): ReceivedReport[] {
  return messages.filter((m) => m.mailFrom === reporter).map(parseReportMail);
}
