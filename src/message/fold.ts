/**
 * Header field folding (RFC 5322 §2.2.3) and the sanitising that keeps a value from
 * starting a header line of its own.
 */

/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998. */
export const PREFERRED_LINE_LENGTH = 78;
export const MAX_LINE_LENGTH = 998;

const FOLD = /\r\n(?=[ \t])/;

/**
 * Makes a field value safe to write after "Name: ". Existing folds (CRLF followed by WSP) are
 * kept; any other CR, LF or control character becomes a space, so an untrusted value can never
 * end the field and inject a header line (or the blank line that ends the header section).
 * Continuation lines made only of whitespace are dropped (RFC 5322 §3.2.2).
 */
export function sanitiseFieldValue(value: string): string {
  const pieces = value.split(FOLD).map((piece) =>
    // HTAB (\x09) is the only control allowed
    piece.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' '),
  );
  const first = pieces[0] ?? '';
  const rest = pieces.slice(1).filter((piece) => piece.trim() !== '');
  return [first, ...rest].join('\r\n');
}

/** Index of the whitespace to fold at, or -1: the last one at or before `width`, else the first after. */
function foldPoint(line: string, width: number): number {
  const firstText = line.search(/[^ \t]/);
  if (firstText < 0) return -1;
  const usable = (i: number): boolean => i > firstText && /[^ \t]/.test(line.slice(i));
  for (let i = Math.min(width, line.length - 1); i > firstText; i--) {
    if ((line[i] === ' ' || line[i] === '\t') && usable(i)) return i;
  }
  for (let i = width + 1; i < line.length; i++) {
    if ((line[i] === ' ' || line[i] === '\t') && usable(i)) return i;
  }
  return -1;
}

/**
 * Folds one logical header line ("Name: value", possibly already folded) so that each
 * physical line is at most `width` characters where whitespace allows. The fold is a CRLF
 * inserted before existing whitespace, so unfolding (RFC 5322 §2.2.3) gives back the input.
 * A run of text with no whitespace longer than the limit cannot be folded and is left whole.
 */
export function foldLine(line: string, width: number = PREFERRED_LINE_LENGTH): string {
  const out: string[] = [];
  for (let physical of line.split(FOLD)) {
    while (physical.length > width) {
      const at = foldPoint(physical, width);
      if (at < 0) break;
      out.push(physical.slice(0, at));
      physical = physical.slice(at);
    }
    out.push(physical);
  }
  return out.join('\r\n');
}

/** A complete header field, sanitised and folded, ending with CRLF. */
export function formatField(name: string, value: string, width: number = PREFERRED_LINE_LENGTH): string {
  // RFC 5322 §3.6.8: field-name is printable ASCII except ":"; ours are constants, but a
  // caller-supplied name must not break the line either
  const safeName = name.replace(/[^\x21-\x39\x3b-\x7e]/g, '');
  return `${foldLine(`${safeName}: ${sanitiseFieldValue(value).trim()}`, width)}\r\n`;
}
