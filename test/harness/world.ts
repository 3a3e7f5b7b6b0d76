/**
 * A whole test world on loopback: the DNS server with the test's zone, a backend sink, and
 * the gateway between them, started as in production. Plus the DKIM keys the zone publishes.
 */
import { startDnsServer, type DnsTestServer, type Zone } from './dns-server.ts';
import { startGateway, type GatewayOptions, type TestGateway } from './gateway.ts';
import { dkimKey, type DkimKey } from './mail.ts';
import { startSink, type Sink, type SinkOptions } from './sink.ts';

export interface World {
  readonly dns: DnsTestServer;
  readonly sink: Sink;
  readonly gw: TestGateway;
  readonly keys: { readonly rsa: DkimKey; readonly ed25519: DkimKey };
  close(): Promise<void>;
}

// Key generation is the slow part of a world: share the keys across the worlds of a process.
let sharedKeys: World['keys'] | null = null;

/**
 * The standard zone: good.example authorises 127.0.0.1 by SPF and publishes DMARC p=reject
 * and DKIM keys s1 (RSA 2048) and s2 (Ed25519); others add what their test needs.
 */
export function standardZone(keys: World['keys']): Zone {
  return {
    'good.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }, { MX: [10, 'mx.good.example'] }],
    '_dmarc.good.example': [{ TXT: 'v=DMARC1; p=reject' }],
    's1._domainkey.good.example': [{ TXT: keys.rsa.record }],
    's2._domainkey.good.example': [{ TXT: keys.ed25519.record }],
  };
}

export async function startWorld(opts: {
  zone?: Zone;
  sink?: SinkOptions;
  policies?: GatewayOptions['policies'];
  config?: GatewayOptions['config'];
  clock?: GatewayOptions['clock'];
  store?: GatewayOptions['store'];
  reportSchedulerIntervalMs?: GatewayOptions['reportSchedulerIntervalMs'];
  resources?: GatewayOptions['resources'];
} = {}): Promise<World> {
  sharedKeys ??= { rsa: dkimKey('rsa'), ed25519: dkimKey('ed25519') };
  const keys = sharedKeys;
  const dns = await startDnsServer({ ...standardZone(keys), ...opts.zone });
  const sink = await startSink(opts.sink);
  const gw = await startGateway({
    dnsPort: dns.port, backendPort: sink.port, policies: opts.policies, config: opts.config, clock: opts.clock, store: opts.store, resources: opts.resources,
    ...(opts.reportSchedulerIntervalMs ? { reportSchedulerIntervalMs: opts.reportSchedulerIntervalMs } : {}),
  });
  return {
    dns, sink, gw, keys,
    async close() {
      await gw.close();
      await sink.close();
      await dns.close();
    },
  };
}

/** A clock the test moves by hand (no sleeping for rate limits to refill). */
export function manualClock(start = Date.parse('2026-11-23T10:00:00Z')): { now(): number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

/** PROXY protocol v1 header claiming `ip` as the client (the gateway must trust 127.0.0.1). */
export function proxyV1(ip: string, port = 40000): string {
  const v6 = ip.includes(':');
  return `PROXY ${v6 ? 'TCP6' : 'TCP4'} ${ip} ${v6 ? '::1' : '127.0.0.1'} ${port} 25\r\n`;
}

/** The header block of a message as received by the sink. */
export function headerBlock(raw: Buffer): string {
  const s = raw.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  return end < 0 ? s : s.slice(0, end + 2);
}

/** Unfolded value of the first header field called `name` (case-insensitive), or null. */
export function headerValue(raw: Buffer, name: string): string | null {
  const unfolded = headerBlock(raw).replace(/\r\n[ \t]+/g, ' ');
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  return re.exec(unfolded)?.[1]?.trimEnd() ?? null;
}
