/**
 * Which DKIM-Signature (and ARC-Message-Signature) fields of a header section the verifier
 * gets, decided once the whole header section is read (message/header-guard.ts).
 *
 * - RFC 6376 §6.1 lets a verifier limit the signatures it evaluates. Past
 *   `maxDkimSignatures`, the signatures whose d= aligns with the From domain (relaxed: the
 *   same organizational domain, RFC 7489 §3.1.1) are kept first, then the others top down. A
 *   sender cannot push the author's own signature out of the verified set by stacking junk
 *   signatures above it: the signature DMARC needs is the one verified.
 * - A signature whose h= lists more than `maxHeaderNames` names is not verified at all (and
 *   takes no place among the verified). mailauth selects the signed fields by scanning the
 *   whole header once per h= name (getSigningHeaderLines): names × fields work per signature,
 *   ten signatures of 45,000 names over 900 fields cost seconds of CPU. The names an honest
 *   signer lists (its fields, over-signed two or three times against additions) are a few
 *   dozen; fields are capped by limits.maxHeaderFields, so capping names bounds the work. A
 *   cap relative to the header's own size (say twice its fields) would refuse honest
 *   over-signing of absent fields on short messages and bound nothing more. The newest
 *   ARC-Message-Signature is verified the same way (RFC 8617 §5.1.1), so an AMS over the cap
 *   is withheld too: its chain then fails (arc=fail), as a chain with an unusable AMS does.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { registrableDomainOf } from '../core/domain.ts';
import { fieldKey } from './field-key.ts';

export interface SignatureLimits {
  /** DKIM-Signature fields verified; the rest are withheld. */
  readonly maxDkimSignatures: number;
  /** h= names per DKIM-Signature / ARC-Message-Signature; over it the field is withheld. */
  readonly maxHeaderNames: number;
}

export interface SignatureSelection {
  /** Indices (into the fields given) of the fields the verifier must not see. */
  readonly withheld: ReadonlySet<number>;
  /** DKIM-Signature fields withheld for the count cap. */
  readonly overCount: number;
  /** DKIM-Signature and ARC-Message-Signature fields withheld for too many h= names. */
  readonly overHeaderNames: number;
}

interface Signature { readonly index: number; readonly domain: string; readonly names: number }

const SIGNATURE_KEYS = new Set(['dkim-signature', 'arc-message-signature']);

/** `fields`: each field as its physical lines (CRLF included), in header order. */
export function selectSignatures(fields: readonly (readonly Buffer[])[], limits: SignatureLimits): SignatureSelection {
  const withheld = new Set<number>();
  const dkim: Signature[] = [];
  let overHeaderNames = 0;
  let fromField: readonly Buffer[] | null = null;
  fields.forEach((field, index) => {
    const key = fieldKey(field);
    if (key === 'from') fromField ??= field;
    if (!SIGNATURE_KEYS.has(key)) return;
    const tags = signatureTags(field);
    if (tags.names > limits.maxHeaderNames) {
      withheld.add(index);
      // only DKIM-Signatures are DKIM results; a withheld ARC-Message-Signature breaks its
      // chain, and ARC says so (arc=fail), not a dkim=policy entry for a signature never there
      if (key === 'dkim-signature') overHeaderNames++;
    } else if (key === 'dkim-signature') {
      dkim.push({ index, ...tags });
    }
  });
  const overCount = Math.max(0, dkim.length - limits.maxDkimSignatures);
  if (overCount > 0) {
    const from = fromField ? authorOrgDomain(fromField) : null;
    const isAligned = new Set(dkim.filter((s) => from !== null && s.domain !== '' && registrableDomainOf(s.domain) === from));
    // stable: aligned signatures first, each group in header order (top down)
    const ranked = [...dkim.filter((s) => isAligned.has(s)), ...dkim.filter((s) => !isAligned.has(s))];
    for (const s of ranked.slice(limits.maxDkimSignatures)) withheld.add(s.index);
  }
  return { withheld, overCount, overHeaderNames };
}

/** The field's value: its lines unfolded (RFC 5322 §2.2.3), after the first colon. */
function fieldValue(field: readonly Buffer[]): string {
  const text = field.length === 1 ? field[0]!.toString('latin1') : Buffer.concat(field).toString('latin1');
  return text.slice(text.indexOf(':') + 1).replace(/\r?\n/g, '');
}

/**
 * d= (lower case, '' when absent) and the number of h= names of a signature's tag list
 * (RFC 6376 §3.2: tag=value pairs separated by ";", whitespace around them ignored). Names
 * are counted by their colons, without building a list of them.
 */
function signatureTags(field: readonly Buffer[]): { domain: string; names: number } {
  let domain = '';
  let names = 0;
  for (const pair of fieldValue(field).split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const tag = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1);
    if (tag === 'd') domain = value.replace(/[ \t]/g, '').toLowerCase();
    else if (tag === 'h') names = countNames(value);
  }
  return { domain, names };
}

function countNames(value: string): number {
  let n = 1;
  for (let i = value.indexOf(':'); i >= 0; i = value.indexOf(':', i + 1)) n++;
  return n;
}

/** The organizational domain of the first author of a From field, or null. */
function authorOrgDomain(field: readonly Buffer[]): string | null {
  const [first] = addressparser(fieldValue(field).trim(), { flatten: true });
  const address = first?.address ?? '';
  const at = address.lastIndexOf('@');
  return at < 0 ? null : registrableDomainOf(address.slice(at + 1)) || null;
}
