/**
 * DMARC failure reports (RFC 9991) as the relay received them, taken apart: the top header,
 * the three parts of the multipart/report, and the message/feedback-report fields.
 */
import assert from 'node:assert/strict';
import type { SinkMessage } from './sink.ts';
import { headerValue } from './world.ts';

export interface ReportPart {
  /** The part's header, unfolded. */
  readonly head: string;
  readonly contentType: string;
  readonly body: string;
}

export interface FailureReportMail {
  readonly mailFrom: string;
  readonly to: readonly string[];
  readonly subject: string | null;
  readonly contentType: string;
  readonly parts: readonly ReportPart[];
  /** message/feedback-report fields by name, unfolded, in order. */
  readonly feedback: ReadonlyMap<string, readonly string[]>;
  /** The third part: the reported header section. */
  readonly header: string;
  readonly raw: Buffer;
}

const unfold = (s: string): string => s.replace(/\r\n[ \t]+/g, ' ');

export function parseFailureReport(m: SinkMessage): FailureReportMail {
  const text = m.raw.toString('latin1');
  const contentType = headerValue(m.raw, 'Content-Type') ?? '';
  const boundary = /boundary="([^"]+)"/.exec(contentType)?.[1];
  assert.ok(boundary, `no boundary in ${contentType}`);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  const pieces = body.split(`\r\n--${boundary}`);
  assert.ok(pieces.at(-1)!.startsWith('--'), 'the closing boundary');
  const parts = pieces.slice(1, -1).map((piece) => {
    const p = piece.replace(/^\r\n/, '');
    const split = p.indexOf('\r\n\r\n');
    const head = unfold(p.slice(0, split));
    return { head, contentType: /^Content-Type:\s*([^;\r\n]+)/im.exec(head)?.[1]?.trim() ?? '', body: p.slice(split + 4) };
  });
  const feedback = new Map<string, string[]>();
  const fb = parts.find((p) => p.contentType === 'message/feedback-report');
  for (const line of unfold(fb?.body ?? '').split('\r\n')) {
    const m2 = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (m2) feedback.set(m2[1]!, [...(feedback.get(m2[1]!) ?? []), m2[2]!.trim()]);
  }
  return {
    mailFrom: m.mailFrom, to: m.rcptTo, subject: headerValue(m.raw, 'Subject'), contentType, parts, feedback,
    header: parts.find((p) => p.contentType === 'text/rfc822-headers')?.body ?? '', raw: m.raw,
  };
}

/** The one value of a feedback field (asserting there is exactly one). */
export function field(report: FailureReportMail, name: string): string {
  const values = report.feedback.get(name) ?? [];
  assert.equal(values.length, 1, `${name}: ${JSON.stringify(values)}`);
  return values[0]!;
}
