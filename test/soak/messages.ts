/**
 * The soak's mail: a few sending domains, each publishing SPF for loopback, DMARC p=reject and
 * an Ed25519 DKIM key with a 1 s TTL (so a DNS fault phase reaches the gateway at once), and
 * messages made on demand, each with a unique Message-ID, signed, with a body that exercises
 * dot-stuffing, 8-bit text and long lines. The client keeps each message's header and body
 * checksum for the accounting.
 */
import { randomBytes } from 'node:crypto';
import { dotStuff } from '../bench/mail.ts';
import type { Zone, ZoneRecord } from '../harness/dns-server.ts';
import { dkimKey, message, sign, type DkimKey } from '../harness/mail.ts';
import { sha256 } from './backend.ts';

export const RECIPIENT_DOMAIN = 'example.net';
const SELECTOR = 'soak';
const TTL = 1;

export interface SoakMessage {
  /** "<…>", as in the header. */
  readonly id: string;
  readonly from: string;
  readonly to: readonly string[];
  /** Ready for DATA: dot-stuffed, CRLF, without the final ".". */
  readonly wire: Buffer;
  /** The header block as sent (the sink's must end with it). */
  readonly header: string;
  readonly bodySha: string;
}

export interface SoakMail {
  readonly domains: readonly string[];
  /** The zone in good health. */
  zone(): Zone;
  /** The same names, every one answering `fault` instead. */
  faultyZone(fault: Extract<ZoneRecord, string>): Zone;
  make(n: number): Promise<SoakMessage>;
}

export function soakMail(run: string, domainCount = 6): SoakMail {
  const key: DkimKey = dkimKey('ed25519');
  const domains = Array.from({ length: domainCount }, (_, i) => `s${i}.soak.example`);
  const zone = (): Zone => Object.fromEntries(domains.flatMap((d) => [
    [d, [{ TXT: 'v=spf1 ip4:127.0.0.0/8 -all', ttl: TTL }]],
    [`_dmarc.${d}`, [{ TXT: 'v=DMARC1; p=reject', ttl: TTL }]],
    [`${SELECTOR}._domainkey.${d}`, [{ TXT: key.record, ttl: TTL }]],
  ]));
  return {
    domains,
    zone,
    faultyZone: (fault) => Object.fromEntries(Object.keys(zone()).map((name) => [name, [fault]])),
    async make(n) {
      const domain = domains[n % domains.length]!;
      const id = `<soak-${run}-${n}@${domain}>`;
      const to = n % 7 === 0 ? [`user${n % 5}@${RECIPIENT_DOMAIN}`, `list${n % 3}@${RECIPIENT_DOMAIN}`] : [`user${n % 5}@${RECIPIENT_DOMAIN}`];
      const raw = message({ from: `sender${n % 11}@${domain}`, to: to[0], subject: `soak ${run} #${n}`, messageId: id.slice(1, -1), body: body(n) });
      const signed = await sign(raw, { domain, selector: SELECTOR, key });
      const cut = signed.indexOf('\r\n\r\n');
      return {
        id, from: `bounce-${n}@${domain}`, to, wire: dotStuff(signed),
        header: signed.slice(0, cut + 2), bodySha: sha256(Buffer.from(signed.slice(cut + 4), 'utf8').toString('latin1')),
      };
    },
  };
}

/**
 * Lines a relay must carry through untouched: leading dots (stuffed on the wire, RFC 5321
 * §4.5.2), 8-bit UTF-8, a line near the 998-octet limit, random text; mostly a few KB, every
 * 50th message about 300 KB.
 */
function body(n: number): string {
  const lines = [`Soak message ${n}.`, '.', '..two dots', '. a dot and a space', 'Grüße aus dem Soak — ünïcödé', 'x'.repeat(990)];
  const target = n % 50 === 0 ? 300_000 : 1_000 + (n * 997) % 6_000;
  for (let size = 0; size < target;) {
    const line = randomBytes(40).toString('base64');
    lines.push(line);
    size += line.length + 2;
  }
  return lines.join('\r\n') + '\r\n';
}
