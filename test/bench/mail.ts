/**
 * The benchmark's sending domain and its mail: a DKIM key, the zone publishing SPF, DMARC
 * p=reject and the key, and messages signed once up front, so the load loop only writes bytes.
 */
import type { Zone } from '../harness/dns-server.ts';
import { dkimKey, message, sign } from '../harness/mail.ts';

export const SENDER_DOMAIN = 'sender.bench.test';
export const RECIPIENT_DOMAIN = 'example.net';
export const RECIPIENT = `postmaster@${RECIPIENT_DOMAIN}`;
export const HELO = `mta.${SENDER_DOMAIN}`;
const SELECTOR = 'bench';

export interface SizeClass {
  readonly name: string;
  /** Approximate size of the whole signed message in bytes. */
  readonly bytes: number;
  /** Messages to sign of this class (default: prepareMail's perClass). */
  readonly count?: number;
}

export interface SignedSet {
  readonly size: SizeClass;
  /** Ready for DATA: dot-stuffed, CRLF line endings, ending with CRLF, without the final ".". */
  readonly wire: readonly Buffer[];
  /** Mean size of the signed messages in bytes (before dot-stuffing). */
  readonly meanBytes: number;
}

export interface BenchMail {
  readonly zone: Zone;
  readonly sets: readonly SignedSet[];
}

/**
 * SPF authorises the loopback network (the load generator's address), DMARC asks for reject,
 * so a message passes only if its DKIM signature verifies (or SPF aligns): the gateway does
 * the full check on every message, as for real mail.
 */
function zoneFor(keyRecord: string): Zone {
  return {
    [SENDER_DOMAIN]: [{ TXT: 'v=spf1 ip4:127.0.0.0/8 -all' }],
    // rua=: the DMARC report points count every message (reporting is off in the other points)
    [`_dmarc.${SENDER_DOMAIN}`]: [{ TXT: `v=DMARC1; p=reject; rua=mailto:dmarc@${SENDER_DOMAIN}` }],
    [`${SELECTOR}._domainkey.${SENDER_DOMAIN}`]: [{ TXT: keyRecord }],
    [HELO]: [{ A: '127.0.0.1' }],
    '1.0.0.127.in-addr.arpa': [{ PTR: HELO }],
  };
}

/** Text lines of 76 characters plus CRLF; no line starts with "." (stuffing is still applied below). */
function body(bytes: number, seed: number): string {
  const words = ['postern', 'gateway', 'mail', 'authentication', 'benchmark', 'message', 'relay', 'header', 'domain', 'policy'];
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    let line = `${seed}-${i}`;
    for (let w = i; line.length < 70; w += 3) line += ` ${words[w % words.length]}`;
    line = line.slice(0, 76);
    lines.push(line);
    size += line.length + 2;
  }
  return lines.join('\r\n') + '\r\n';
}

/** RFC 5321 §4.5.2: a line starting with "." gets another "." in front. */
export function dotStuff(raw: string): Buffer {
  return Buffer.from(raw.replace(/(^|\r\n)\./g, '$1..'), 'utf8');
}

/** Generates the key and signs `perClass` messages of each size class (distinct Message-IDs). */
export async function prepareMail(classes: readonly SizeClass[], perClass: number): Promise<BenchMail> {
  const key = dkimKey('rsa', 2048);
  const sets: SignedSet[] = [];
  for (const size of classes) {
    const wire: Buffer[] = [];
    let total = 0;
    // Headers plus a 2048-bit RSA signature take about 1 KB.
    const bodyBytes = Math.max(256, size.bytes - 1_000);
    const count = size.count ?? perClass;
    for (let n = 0; n < count; n++) {
      const raw = message({
        from: `newsletter@${SENDER_DOMAIN}`,
        to: RECIPIENT,
        subject: `Benchmark ${size.name} #${n}`,
        messageId: `bench-${size.name}-${n}-${Date.now().toString(36)}@${SENDER_DOMAIN}`,
        body: body(bodyBytes, n),
      });
      const signed = await sign(raw, { domain: SENDER_DOMAIN, selector: SELECTOR, key });
      total += Buffer.byteLength(signed);
      wire.push(dotStuff(signed));
    }
    sets.push({ size, wire, meanBytes: Math.round(total / count) });
  }
  return { zone: zoneFor(key.record), sets };
}
