/**
 * Mail for the DMARC report tests: domains that publish rua= (one verified third-party
 * destination, one that did not authorise its destination, one without rua=), messages from
 * several source IPs (PROXY protocol) and the counts a report must then show.
 */
import assert from 'node:assert/strict';
import type { Zone } from './dns-server.ts';
import { message } from './mail.ts';
import { sendMail } from './smtp-client.ts';
import { proxyV1 } from './world.ts';

/** a.example: p=none, own rua; b.example: p=quarantine, rua at a verified third party; c.example: p=reject, rua not authorised. */
export function reportZone(): Zone {
  return {
    'a.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
    '_dmarc.a.example': [{ TXT: 'v=DMARC1; p=none; rua=mailto:dmarc@a.example' }],
    'b.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
    '_dmarc.b.example': [{ TXT: 'v=DMARC1; p=quarantine; rua=mailto:reports@rua.example' }],
    'b.example._report._dmarc.rua.example': [{ TXT: 'v=DMARC1' }],
    'c.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
    '_dmarc.c.example': [{ TXT: 'v=DMARC1; p=reject; rua=mailto:agg@other.example' }],
    'nr.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all' }],
    '_dmarc.nr.example': [{ TXT: 'v=DMARC1; p=reject' }],
  };
}

/** [domain, client ip, expected disposition, how many] */
export const TRAFFIC: ReadonlyArray<readonly [string, string, string, number]> = [
  ['a.example', '192.0.2.10', 'none', 3], // SPF pass, p=none
  ['a.example', '198.51.100.7', 'none', 2], // SPF fail, p=none: delivered
  ['b.example', '192.0.2.11', 'pass', 2], // passes an enforcing policy: "pass" (RFC 9990)
  ['b.example', '203.0.113.9', 'quarantine', 1],
  ['c.example', '198.51.100.8', 'reject', 1],
  ['nr.example', '192.0.2.12', 'none', 1], // no rua=: never collected
];

export async function sendTraffic(ports: readonly number[]): Promise<void> {
  let n = 0;
  for (const [domain, ip, disposition, count] of TRAFFIC) {
    for (let i = 0; i < count; i++) {
      const port = ports[n++ % ports.length]!;
      const r = await sendMail(port, { from: `news@${domain}`, to: ['user@example.net'], message: message({ from: `news@${domain}` }), preface: proxyV1(ip) });
      assert.equal(r.data?.code, disposition === 'reject' ? 550 : 250, `${domain} from ${ip}: ${JSON.stringify(r)}`);
    }
  }
}

export const collected = (): number => TRAFFIC.filter(([d]) => d !== 'nr.example').reduce((n, [, , , c]) => n + c, 0);

export function expectedCounts(domain: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [d, ip, disposition, count] of TRAFFIC) if (d === domain) out[`${ip}|${disposition}`] = (out[`${ip}|${disposition}`] ?? 0) + count;
  return out;
}

