/**
 * Counted rows of one report domain and time range → the reports to send: XML, gzip'd, with
 * the report-id and file name of RFC 9990 §2 / §4, split over several reports when one would
 * exceed the size limit. Deterministic: the same rows always give the same reports, so every
 * delivery attempt (and every node) sends the same report-ids.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { DmarcPublished } from '../core/facts.ts';
import { decodeRow } from './row.ts';
import { recordXml, reportXml } from './xml.ts';

export interface ReportSettings {
  readonly orgName: string;
  readonly email: string;
  readonly extraContact: string;
  readonly maxReportBytes: number;
  readonly generator: string;
}

export interface ReportInput {
  /** The job the rows come from: in the report-id, so that two jobs of one range never share one. */
  readonly id?: string;
  readonly domain: string;
  readonly published: DmarcPublished;
  /** ms since the epoch; end exclusive. */
  readonly begin: number;
  readonly end: number;
  readonly rows: ReadonlyMap<string, number>;
}

export interface ReportPart {
  readonly reportId: string;
  readonly filename: string;
  readonly begin: number;
  readonly end: number;
  /** Messages counted in this part. */
  readonly messages: number;
  readonly records: number;
  readonly xml: string;
  readonly gzip: Buffer;
}

/** The Submitter of the Subject and the file name's receiver: our reporting address's domain. */
export function submitterOf(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1).toLowerCase();
}

/** Records sorted by count (largest first), then by content: stable across runs and nodes. */
function records(rows: ReadonlyMap<string, number>): Array<{ xml: string; count: number }> {
  const out: Array<{ xml: string; count: number; key: string }> = [];
  for (const [field, count] of rows) {
    const row = decodeRow(field);
    if (row && count > 0) out.push({ xml: recordXml(row, count), count, key: field });
  }
  return out.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export function buildReports(input: ReportInput, s: ReportSettings): ReportPart[] {
  const all = records(input.rows);
  if (all.length === 0) return [];
  const submitter = submitterOf(s.email);
  // RFC 9990 §2.1 date_range: seconds; the end is the last second covered (our end is exclusive)
  const begin = Math.floor(input.begin / 1000);
  const end = Math.max(begin, Math.ceil(input.end / 1000) - 1);
  const tag = createHash('sha256').update(`${input.domain}\n${input.begin}\n${input.end}${input.id === undefined ? '' : `\n${input.id}`}`).digest('hex').slice(0, 12);

  const make = (chunk: Array<{ xml: string; count: number }>, index: number, total: number): ReportPart => {
    // One report: an msg-id-shaped report-id (RFC 9990 §4 ridfmt), no unique-id in the file
    // name. Parts of a split: each needs a unique-id in its file name, which is 1*(ALPHA /
    // DIGIT) and MUST be identical to the Report-ID (RFC 9990 §2 "Unique Identifiers"), so the
    // part's report-id is that alphanumeric string, in the XML, the Subject and the file name.
    const uniqueId = total > 1 ? `${tag}p${index + 1}` : null;
    const reportId = uniqueId ?? `${begin}.${end}.${tag}@${submitter}`;
    const xml = reportXml({ orgName: s.orgName, email: s.email, extraContact: s.extraContact, reportId, begin, end, generator: s.generator },
      input.published, chunk.map((r) => r.xml));
    // RFC 9990 §4: receiver "!" policy-domain "!" begin "!" end [ "!" unique-id ] ".xml.gz"
    const filename = `${submitter}!${input.domain}!${begin}!${end}${uniqueId ? `!${uniqueId}` : ''}.xml.gz`;
    return { reportId, filename, begin, end, messages: chunk.reduce((n, r) => n + r.count, 0), records: chunk.length, xml, gzip: gzipSync(xml, { level: 9 }) };
  };

  // Split into more and more equal parts until each fits (a single record always goes alone).
  for (let parts = 1; ; parts++) {
    const size = Math.ceil(all.length / parts);
    const chunks: Array<Array<{ xml: string; count: number }>> = [];
    for (let i = 0; i < all.length; i += size) chunks.push(all.slice(i, i + size));
    const built = chunks.map((c, i) => make(c, i, chunks.length));
    if (built.every((b) => b.gzip.length <= s.maxReportBytes) || size === 1) return built;
    // Jump close to the needed number of parts instead of trying each.
    const biggest = Math.max(...built.map((b) => b.gzip.length));
    parts = Math.max(parts, Math.ceil((parts * biggest) / s.maxReportBytes) - 1);
  }
}
