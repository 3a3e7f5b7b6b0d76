/**
 * The aggregate report document (RFC 9990 §2 and its XML schema, namespace
 * urn:ietf:params:xml:ns:dmarc-2.0). Elements are written in schema order; optional ones only
 * when known. Text is escaped and stripped of characters XML 1.0 cannot carry, since selectors
 * and domains come from messages.
 */
import type { DmarcPublished } from '../core/facts.ts';
import type { ReportRow } from './row.ts';

export interface ReportMeta {
  readonly orgName: string;
  readonly email: string;
  readonly extraContact: string;
  readonly reportId: string;
  /** Seconds since the epoch, inclusive. */
  readonly begin: number;
  readonly end: number;
  readonly generator: string;
}

export const DMARC_NS = 'urn:ietf:params:xml:ns:dmarc-2.0';

// XML 1.0 §2.2 Char: no C0 controls other than TAB, LF, CR; no lone surrogates, no U+FFFE/FFFF.
const NOT_XML_CHAR = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function xmlText(value: string | number): string {
  return String(value).replace(NOT_XML_CHAR, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const el = (name: string, value: string | number, indent: string): string => `${indent}<${name}>${xmlText(value)}</${name}>`;

function metadata(m: ReportMeta): string[] {
  return [
    '  <report_metadata>',
    el('org_name', m.orgName, '    '),
    el('email', m.email, '    '),
    ...(m.extraContact ? [el('extra_contact_info', m.extraContact, '    ')] : []),
    el('report_id', m.reportId, '    '),
    '    <date_range>',
    el('begin', m.begin, '      '),
    el('end', m.end, '      '),
    '    </date_range>',
    el('generator', m.generator, '    '),
    '  </report_metadata>',
  ];
}

function policyPublished(p: DmarcPublished): string[] {
  const i = '    ';
  return [
    '  <policy_published>',
    el('domain', p.domain, i),
    el('p', p.p, i),
    ...(p.sp ? [el('sp', p.sp, i)] : []),
    ...(p.np ? [el('np', p.np, i)] : []),
    el('adkim', p.adkim, i),
    el('aspf', p.aspf, i),
    el('discovery_method', p.discovery, i),
    ...(p.fo ? [el('fo', p.fo, i)] : []),
    el('testing', p.testing ? 'y' : 'n', i),
    '  </policy_published>',
  ];
}

/** One <record>: RFC 9990 §2.1 row, identifiers, auth_results. */
export function recordXml(row: ReportRow, count: number): string {
  const i = '      ';
  return [
    '  <record>',
    '    <row>',
    el('source_ip', row.sourceIp, i),
    el('count', count, i),
    '      <policy_evaluated>',
    el('disposition', row.disposition, `${i}  `),
    el('dkim', row.dkim, `${i}  `),
    el('spf', row.spf, `${i}  `),
    ...row.reasons.flatMap((r) => [`${i}  <reason>`, el('type', r.type, `${i}    `), ...(r.comment ? [el('comment', r.comment, `${i}    `)] : []), `${i}  </reason>`]),
    '      </policy_evaluated>',
    '    </row>',
    '    <identifiers>',
    el('header_from', row.headerFrom, i),
    ...(row.envelopeFrom ? [el('envelope_from', row.envelopeFrom, i)] : []),
    ...(row.envelopeTo ? [el('envelope_to', row.envelopeTo, i)] : []),
    '    </identifiers>',
    '    <auth_results>',
    ...row.dkimResults.flatMap((d) => ['      <dkim>', el('domain', d.domain, `${i}  `), el('selector', d.selector, `${i}  `), el('result', d.result, `${i}  `), '      </dkim>']),
    ...(row.spfResult ? ['      <spf>', el('domain', row.spfResult.domain, `${i}  `), ...(row.spfResult.scope ? [el('scope', row.spfResult.scope, `${i}  `)] : []),
      el('result', row.spfResult.result, `${i}  `), '      </spf>'] : []),
    '    </auth_results>',
    '  </record>',
  ].join('\n');
}

/** The whole document; `records` are recordXml() outputs (at least one: the schema requires it). */
export function reportXml(meta: ReportMeta, published: DmarcPublished, records: readonly string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<feedback xmlns="${DMARC_NS}">`,
    '  <version>1.0</version>',
    ...metadata(meta),
    ...policyPublished(published),
    ...records,
    '</feedback>',
    '',
  ].join('\n');
}
