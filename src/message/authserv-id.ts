import { domainToASCII } from 'node:url';

/**
 * Reading the authserv-id of an incoming Authentication-Results (RFC 8601 §2.2) or
 * ARC-Authentication-Results (RFC 8617 §4.1.1) field, to find the ones that claim to be ours.
 *
 * A forged field only has to fool one reader downstream, so this reads as leniently as any
 * reader might: it returns every string a parser could take for the authserv-id, and the field
 * is ours if any of them is. The id ends at the first character that cannot be part of a host
 * name (a NUL, "/", a non-breaking space…), as a reader that stops there would see it.
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

/** The first two ";"-separated parts of a value, with ";" inside comments and quoted strings ignored. */
function leadingSegments(value: string): [string, string] {
  let depth = 0;
  let quoted = false;
  const cuts: number[] = [];
  for (let i = 0; i < value.length && cuts.length < 2; i++) {
    const c = value[i];
    if (c === '\\' && (quoted || depth > 0)) i++;
    else if (quoted) quoted = c !== '"';
    else if (c === '"' && depth === 0) quoted = true;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (c === ';' && depth === 0) cuts.push(i);
  }
  const first = cuts[0] ?? value.length;
  return [value.slice(0, first), cuts[0] === undefined ? '' : value.slice(first + 1, cuts[1] ?? value.length)];
}

// Whitespace, controls and invisible format characters a reader may skip before the id.
const SKIPPABLE = /^[\s\p{Cc}\p{Cf}\p{Z}]*/u;
// What a host name (A-labels or U-labels) is made of; the id ends at anything else.
const HOST = /^[\p{L}\p{N}\p{M}._-]+/u;

/** The host-name-like start of `text` after CFWS, unquoted when it is a quoted-string; '' if none. */
function leadingId(text: string): string {
  let rest = text.slice(skipCfws(text, 0)).replace(SKIPPABLE, '');
  if (rest.startsWith('"')) {
    // RFC 8601 §2.2: authserv-id = value = token / quoted-string
    let inner = '';
    for (let i = 1; i < rest.length && rest[i] !== '"'; i++) {
      if (rest[i] === '\\') i++;
      inner += rest[i] ?? '';
    }
    rest = inner.replace(SKIPPABLE, '');
  }
  return HOST.exec(rest)?.[0] ?? '';
}

// RFC 8617 §4.1.1: "i=" instance ";" — written, or garbled, at the start of the value
const INSTANCE = /^i[\s\p{Cc}]*=/iu;
const INSTANCE_AND_VALUE = /^i[\s\p{Cc}]*=[\s\p{Cc}]*[^\s;]*/iu;

/**
 * Every string a reader could take for the authserv-id of this value. For a value that starts
 * with an instance tag, well-formed or not ("i=1;", "i=x;", "i=;", "i=1 id;"), the id after it
 * as well as what follows the tag's value: a broken "i=" must not hide our id.
 */
export function authservIdCandidates(value: string): string[] {
  const [first, second] = leadingSegments(value);
  const head = first.slice(skipCfws(first, 0));
  const out = [leadingId(first)];
  if (INSTANCE.test(head)) {
    out.push(leadingId(second));
    out.push(leadingId(head.replace(INSTANCE_AND_VALUE, '')));
  }
  return out.filter((id) => id !== '');
}

/** True when a reader could take this A-R or ARC-A-R value for one written by `ours` (comparable form). */
export function claimsAuthservId(value: string, ours: string): boolean {
  return authservIdCandidates(value).some((id) => comparableId(id) === ours);
}

/** Case-insensitive comparable form of a host name: lower case, A-labels, no root dot. */
export function comparableId(id: string): string {
  const lower = id.trim().toLowerCase().replace(/\.+$/, '');
  // only non-ASCII names need IDNA
  return /[^\x00-\x7f]/.test(lower) ? domainToASCII(lower) || lower : lower;
}
