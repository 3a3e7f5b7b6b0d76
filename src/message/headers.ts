import type { HeaderField } from '../core/verdict.ts';
import { claimsAuthservId, comparableId } from './authserv-id.ts';
import { formatField } from './fold.ts';

/**
 * The message as relayed: our fields on top, the forged ones left out, every other byte as
 * the sender wrote it. The output is one Buffer.concat of our fields and slices of the
 * original (the ranges between the fields dropped): nothing of the message is re-encoded or
 * copied twice.
 */

const CRLF = Buffer.from('\r\n');
const LF = 0x0a;

/** Our own header namespace: nobody outside may set it (DESIGN "Headers written towards the backend"). */
const OWN_PREFIX = 'x-postern-';
const RESULTS_FIELDS = new Set(['authentication-results', 'arc-authentication-results']);

/** Length of the header section: up to and including the CRLF of its last field (0: none). */
export function headerLength(message: Buffer): number {
  if (message[0] === 0x0d && message[1] === LF) return 0; // an empty header section
  const end = message.indexOf('\r\n\r\n');
  return end < 0 ? message.length : end + 2;
}

/** RFC 5322 §2.2.3: a line starting with SP or HTAB continues the field above it. */
function startsWithWsp(message: Buffer, at: number): boolean {
  return message[at] === 0x20 || message[at] === 0x09;
}

/** Start offsets of the lines of message[0, end), and `end` itself last. */
function lineStarts(message: Buffer, end: number): number[] {
  const starts: number[] = [];
  for (let pos = 0; pos < end;) {
    starts.push(pos);
    const lf = message.indexOf(LF, pos);
    pos = lf < 0 || lf >= end ? end : lf + 1;
  }
  starts.push(end);
  return starts;
}

/**
 * Whether the line at `start` opens a field as mailauth reads it (tools.js startsField):
 * printable non-colon characters, then optional WSP, then ":", where the WSP may run on into
 * the next line when that line belongs to the same row (a fold before the colon).
 */
function opensField(message: Buffer, start: number, lineEnd: number, next: { start: number; end: number } | null): boolean {
  let i = start;
  while (i < lineEnd && message[i]! >= 0x21 && message[i]! <= 0x7e && message[i] !== 0x3a) i++;
  if (i === start) return false;
  const skip = (from: number, to: number): number => {
    let j = from;
    while (j < to && (message[j] === 0x20 || message[j] === 0x09 || message[j] === 0x0d || message[j] === LF)) j++;
    return j;
  };
  i = skip(i, lineEnd);
  if (i < lineEnd) return message[i] === 0x3a;
  return next !== null && message[skip(next.start, next.end)] === 0x3a;
}

/**
 * Rows of the header section as the most lenient reader groups them: mailauth joins every
 * line that does not open a field to the row above (RFC 5322 only joins lines starting with
 * WSP, which are a subset). Decided bottom-up, as mailauth does. Returns the index of each
 * row's first line; a row ends where the next one starts.
 */
function rowStarts(message: Buffer, starts: readonly number[]): number[] {
  const lines = starts.length - 1;
  const joins = new Uint8Array(lines);
  for (let i = lines - 1; i > 0; i--) {
    const next = i + 1 < lines && joins[i + 1] ? { start: starts[i + 1]!, end: starts[i + 2]! } : null;
    if (!opensField(message, starts[i]!, starts[i + 1]!, next)) joins[i] = 1;
  }
  const rows: number[] = [];
  for (let i = 0; i < lines; i++) if (!joins[i]) rows.push(i);
  return rows;
}

/**
 * Name (lower-cased, folds, WSP and controls removed) and value (unfolded) of field text
 * (latin1). A value with 8-bit bytes is read both as latin1 and as UTF-8 (an internationalised
 * id in U-labels), as different readers would.
 */
function readField(text: string): { name: string; values: string[] } {
  const colon = text.indexOf(':');
  if (colon < 0) return { name: '', values: [] };
  // RFC 5322 §4.5.1 allows WSP before the colon, mailauth a fold there too; a reader that
  // skips a stray control character would see the same name, so none of them count
  const name = text.slice(0, colon).replace(/[\x00-\x20\x7f]+/g, '').toLowerCase();
  const raw = text.slice(colon + 1).replace(/\r?\n/g, '');
  return { name, values: /[^\x00-\x7f]/.test(raw) ? [raw, Buffer.from(raw, 'latin1').toString('utf8')] : [raw] };
}

function isForged(field: { name: string; values: string[] }, ours: string): boolean {
  if (field.name.startsWith(OWN_PREFIX)) return true;
  return RESULTS_FIELDS.has(field.name) && field.values.some((value) => claimsAuthservId(value, ours));
}

/**
 * A row is dropped when any reading of it is forged: the whole row (mailauth) or a field
 * starting at one of its lines that does not begin with WSP (RFC 5322 and most parsers).
 * `header` is the header section as latin1 text: its offsets are byte offsets.
 */
function rowIsForged(header: string, starts: readonly number[], first: number, last: number, ours: string): boolean {
  const text = (from: number, to: number): string => header.slice(starts[from], starts[to]);
  const wsp = (line: number): boolean => header[starts[line]!] === ' ' || header[starts[line]!] === '\t';
  if (isForged(readField(text(first, last)), ours)) return true;
  for (let i = first + 1; i < last; i++) {
    if (wsp(i)) continue;
    let end = i + 1;
    while (end < last && wsp(end)) end++;
    if (isForged(readField(text(i, end)), ours)) return true;
  }
  return false;
}

/**
 * Byte ranges [start, end) of the header fields to drop before relaying: every
 * Authentication-Results and ARC-Authentication-Results a reader could take for ours (RFC 8601
 * §5: results claiming our authserv-id that we did not add are forgeries; compared
 * case-insensitively, RFC 8601 §2.5), and every X-Postern-* field. Others are kept.
 */
export function forgedRanges(message: Buffer, authservId: string): Array<[number, number]> {
  const ours = comparableId(authservId);
  const length = headerLength(message);
  const header = message.toString('latin1', 0, length);
  const starts = lineStarts(message, length);
  const rows = rowStarts(message, starts);
  const ranges: Array<[number, number]> = [];
  rows.forEach((first, r) => {
    const last = rows[r + 1] ?? starts.length - 1;
    if (rowIsForged(header, starts, first, last, ours)) ranges.push([starts[first]!, starts[last]!]);
  });
  return ranges;
}

/**
 * The message to relay: `add` (sanitised and folded, in the given order), then the message
 * without its forged fields. A message whose first line starts with whitespace would continue
 * the last field we add (a forged trace field). DATA refuses such a message before it gets
 * here (550 5.6.0, message/header-guard.ts); should one arrive anyway, the header section
 * ends before it (as Postfix's smtpd does), so it can never continue ours.
 */
export function rewriteMessage(message: Buffer, authservId: string, add: readonly HeaderField[]): Buffer {
  return Buffer.concat(rewrittenPieces(message, authservId, add));
}

/**
 * rewriteMessage as the pieces to write, in order, without joining them: our fields, then
 * slices of the message (no copy of it; the relay writes the pieces as they are).
 */
export function rewrittenPieces(message: Buffer, authservId: string, add: readonly HeaderField[]): Buffer[] {
  const parts: Buffer[] = add.map((field) => Buffer.from(formatField(field.name, field.value), 'utf8'));
  if (startsWithWsp(message, 0)) return [...parts, CRLF, message];
  let pos = 0;
  for (const [start, end] of forgedRanges(message, authservId)) {
    if (start > pos) parts.push(message.subarray(pos, start));
    pos = end;
  }
  if (pos < message.length) parts.push(message.subarray(pos));
  // a header section without a body, whose last line lacks its CRLF (possible only outside
  // SMTP), must not run on: the relay would end it with the blank line of an empty body
  const tail = parts.at(-1);
  if (headerLength(message) === message.length && tail && tail[tail.length - 1] !== LF) parts.push(CRLF);
  return parts;
}

/**
 * rewrittenPieces for a message held as the chunks it arrived in: only the chunks up to the
 * end of the header section are joined (the header is small; the body may be megabytes), the
 * rest are passed on as they are. Nothing of the body is copied.
 */
export function rewrittenChunks(chunks: readonly Buffer[], authservId: string, add: readonly HeaderField[]): Buffer[] {
  const upTo = headerChunks(chunks);
  const head = upTo === 1 ? chunks[0]! : Buffer.concat(chunks.slice(0, upTo));
  return [...rewrittenPieces(head, authservId, add), ...chunks.slice(upTo)];
}

/** How many leading chunks hold the whole header section and its blank line (all of them when there is none). */
function headerChunks(chunks: readonly Buffer[]): number {
  const END = '\r\n\r\n';
  let tail: Buffer = Buffer.alloc(0); // the last bytes of the chunks before, for an end split between chunks
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    if (i === 0 && chunk[0] === 0x0d && chunk[1] === LF) return 1; // an empty header section
    if (Buffer.concat([tail, chunk.subarray(0, 3)]).includes(END) || chunk.includes(END)) return i + 1;
    tail = chunk.length >= 3 ? chunk.subarray(-3) : Buffer.concat([tail, chunk]).subarray(-3);
  }
  return chunks.length;
}
