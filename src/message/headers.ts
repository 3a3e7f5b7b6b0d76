import type { HeaderField } from '../core/verdict.ts';
import { comparableId, readAuthservId } from './authserv-id.ts';
import { formatField } from './fold.ts';

/**
 * The header section of a message as raw bytes (RFC 5322 §2.2), split so that we can drop
 * fields and prepend ours without re-encoding anything the sender wrote.
 */

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** One header field as received: the name and every byte of it, continuation lines included. */
export interface RawHeaderField {
  /** Field name as written, without surrounding whitespace; '' for a line without a colon. */
  readonly name: string;
  /** The field's bytes including its final CRLF (or none, for a last line that had none). */
  readonly raw: Buffer;
}

export interface ParsedMessage {
  readonly fields: readonly RawHeaderField[];
  /**
   * The body, without the blank line that separates it from the header; null when the
   * message had no blank line at all (RFC 5322 §3.5: the body is optional).
   */
  readonly body: Buffer | null;
}

/** Splits at the first CRLFCRLF; a message starting with CRLF has an empty header section. */
export function splitMessage(message: Buffer): { header: Buffer; body: Buffer | null } {
  if (message.subarray(0, 2).equals(CRLF)) {
    return { header: message.subarray(0, 0), body: message.subarray(2) };
  }
  const end = message.indexOf(CRLFCRLF);
  if (end < 0) return { header: message, body: null };
  return { header: message.subarray(0, end + 2), body: message.subarray(end + 4) };
}

/** Parses header fields; lines starting with SP or HTAB continue the previous field. */
export function parseHeaderFields(header: Buffer): RawHeaderField[] {
  const fields: RawHeaderField[] = [];
  let start = 0;
  let pos = 0;
  while (pos < header.length) {
    const lf = header.indexOf(0x0a, pos);
    const next = lf < 0 ? header.length : lf + 1;
    const following = header[next];
    // RFC 5322 §2.2.3: a CRLF followed by WSP is a fold, not the end of the field
    if (next >= header.length || (following !== 0x20 && following !== 0x09)) {
      fields.push(toField(header.subarray(start, next)));
      start = next;
    }
    pos = next;
  }
  return fields;
}

function toField(raw: Buffer): RawHeaderField {
  const colon = raw.indexOf(0x3a);
  const firstLineEnd = raw.indexOf(0x0a);
  // RFC 5322 §4.5.1 (obs-optional) allows WSP before the colon, hence the trim
  const hasName = colon > 0 && (firstLineEnd < 0 || colon < firstLineEnd);
  const name = hasName ? raw.subarray(0, colon).toString('latin1').trim() : '';
  return { name, raw };
}

export function parseMessage(message: Buffer): ParsedMessage {
  const { header, body } = splitMessage(message);
  return { fields: parseHeaderFields(header), body };
}

/** The unfolded value of a field: after the colon, CRLFs removed (RFC 5322 §2.2.3), trimmed. */
export function fieldValue(field: RawHeaderField): string {
  const text = field.raw.toString('utf8');
  const colon = text.indexOf(':');
  return (colon < 0 ? '' : text.slice(colon + 1)).replace(/\r?\n/g, '').trim();
}

/** Our own header namespace: nobody outside may set it (DESIGN "Headers written towards the backend"). */
const OWN_PREFIX = 'x-postern-';

/**
 * Splits fields into the ones to keep and the ones to drop before relaying: every
 * Authentication-Results and ARC-Authentication-Results whose authserv-id is ours (RFC 8601
 * §5: results claiming our id that we did not add are forgeries), and every X-Postern-* field.
 * Results of other authserv-ids are kept. Comparison is case-insensitive (RFC 8601 §2.5).
 */
export function removeForged(
  fields: readonly RawHeaderField[],
  authservId: string,
): { kept: RawHeaderField[]; removed: RawHeaderField[] } {
  const ours = comparableId(authservId);
  const kept: RawHeaderField[] = [];
  const removed: RawHeaderField[] = [];
  for (const field of fields) {
    (isForged(field, ours) ? removed : kept).push(field);
  }
  return { kept, removed };
}

function isForged(field: RawHeaderField, ours: string): boolean {
  const name = field.name.toLowerCase();
  if (name.startsWith(OWN_PREFIX)) return true;
  if (name !== 'authentication-results' && name !== 'arc-authentication-results') return false;
  const id = readAuthservId(fieldValue(field), name === 'arc-authentication-results');
  return id !== null && comparableId(id) === ours;
}

/**
 * Builds the message to relay: `add` (sanitised and folded, in the given order) on top, then
 * `fields`, then the blank line and the body. The body is copied once, by Buffer.concat.
 */
export function prependHeaders(message: ParsedMessage, add: readonly HeaderField[]): Buffer {
  const parts: Buffer[] = add.map((field) => Buffer.from(formatField(field.name, field.value), 'utf8'));
  for (const field of message.fields) {
    parts.push(field.raw);
    // a last field without its CRLF would swallow the blank line
    if (!endsWithLf(field.raw)) parts.push(CRLF);
  }
  if (message.body !== null) parts.push(CRLF, message.body);
  return Buffer.concat(parts);
}

function endsWithLf(raw: Buffer): boolean {
  return raw.length > 0 && raw[raw.length - 1] === 0x0a;
}
