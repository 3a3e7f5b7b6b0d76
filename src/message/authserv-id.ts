import { domainToASCII } from 'node:url';

/**
 * Reading the authserv-id of an incoming Authentication-Results (RFC 8601 §2.2) or
 * ARC-Authentication-Results (RFC 8617 §4.1.1) field, to find the ones that claim to be ours.
 */

/** Skips CFWS (RFC 5322 §3.2.2): whitespace, folds and nested comments with quoted-pairs. */
function skipCfws(text: string, from: number): number {
  let i = from;
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '(') {
      depth = 1;
    } else if (c !== ' ' && c !== '\t' && c !== '\r' && c !== '\n') {
      return i;
    }
    i++;
  }
  return i;
}

/** RFC 8617 §4.1.1: "i=" instance ";" before the authserv-id; returns the index after ";" or -1. */
function skipInstanceTag(text: string, from: number): number {
  let i = skipCfws(text, from);
  if (text[i] !== 'i' && text[i] !== 'I') return -1;
  i = skipCfws(text, i + 1);
  if (text[i] !== '=') return -1;
  i = skipCfws(text, i + 1);
  const digits = /^[0-9]+/.exec(text.slice(i));
  if (!digits) return -1;
  i = skipCfws(text, i + digits[0].length);
  return text[i] === ';' ? i + 1 : -1;
}

/**
 * The authserv-id of a field value, unquoted, or null when there is none. For an
 * ARC-Authentication-Results value (`arc`), the leading instance tag is skipped first.
 */
export function readAuthservId(value: string, arc: boolean): string | null {
  let i = 0;
  if (arc) {
    const after = skipInstanceTag(value, 0);
    // a malformed instance tag: read the value as if there were none, so that a forgery
    // cannot hide our id behind a broken "i="
    if (after >= 0) i = after;
  }
  i = skipCfws(value, i);
  if (value[i] === '"') {
    // RFC 8601 §2.2: authserv-id = value = token / quoted-string
    let out = '';
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      out += value[i] ?? '';
    }
    return out;
  }
  const token = /^[^\s;()"]+/.exec(value.slice(i));
  return token ? token[0] : null;
}

/** Case-insensitive comparable form of a host name: lower case, A-labels, no root dot. */
export function comparableId(id: string): string {
  const lower = id.trim().toLowerCase().replace(/\.+$/, '');
  // only non-ASCII names need IDNA
  return /[^\x00-\x7f]/.test(lower) ? domainToASCII(lower) || lower : lower;
}
