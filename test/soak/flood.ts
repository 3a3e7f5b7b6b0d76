/**
 * Floods, as a scenario printing figures (`make soak` and `make flood`; the suite's
 * flood.test.ts asserts the limits without timing):
 * - slowloris: 1,000 connections that greet, say EHLO and then trickle a never-ending line,
 *   spread over 50 client addresses by PROXY headers from 127.0.0.1 (a trusted balancer), up to
 *   limits.maxConnectionsPerIp (20) each; a legit client's latency (connect to the final reply)
 *   with and without them, p50 and p99; the per-IP and total caps probed while they hold;
 * - large uploads: clients sending 9 MB messages as fast as they can against a 64 MiB in-flight
 *   budget, then clients that send 9 MB and hold before the final dot; the gateway's RSS
 *   against baseline + budget, and how many small legit messages still get through.
 * The gateway is a child process (its RSS is its own), on the embedded memory store.
 */
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { peakRssBytes, resetPeakRss, rssBytes } from '../bench/proc.ts';
import { SmtpSession } from '../bench/smtp-session.ts';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer } from '../harness/dns-server.ts';
import { scrape } from '../harness/metrics.ts';
import { proxyV1 } from '../harness/world.ts';
import { startSoakBackend } from './backend.ts';
import { RECIPIENT_DOMAIN, soakMail, type SoakMessage } from './messages.ts';
import { unlimitedRates } from './soak.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MB = 1024 * 1024;
export const FLOOD = { idle: 1_000, perIp: 20, maxConnections: 1_100, budget: 64 * MB, bigBytes: 9 * 1_000_000 } as const;

export interface FloodReport {
  readonly lines: string[];
  /** Limits that did not hold, or p99 over 2x. */
  readonly problems: string[];
}

/** Client address n of the flood: 50 addresses × 20 connections (10.77.0.1 …). */
const floodIp = (n: number): string => `10.77.${Math.floor(n / FLOOD.perIp / 250)}.${1 + (Math.floor(n / FLOOD.perIp) % 250)}`;

/** A slowloris connection: PROXY header, greeting, EHLO, then one byte of an endless line every 5 s. */
export interface Idle {
  readonly greeting: string;
  close(): void;
}

export function openIdle(port: number, ip: string): Promise<Idle> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffer = '';
    let trickle: NodeJS.Timeout | null = null;
    const idle = (greeting: string): Idle => ({
      greeting,
      close() {
        if (trickle) clearInterval(trickle);
        socket.destroy();
      },
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (trickle) clearInterval(trickle);
      resolve(idle(buffer.split('\r\n')[0] || '(closed)'));
    });
    socket.write(proxyV1(ip));
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      const first = buffer === '';
      buffer += d;
      if (!first || !buffer.includes('\r\n')) return;
      const greeting = buffer.split('\r\n')[0]!;
      if (greeting.startsWith('220')) {
        socket.write('EHLO slow.flood.example\r\nNOOP ');
        trickle = setInterval(() => socket.write('z'), 5_000);
      }
      resolve(idle(greeting));
    });
  });
}

/** Opens `count` idle connections, `batch` at a time. */
export async function openMany(port: number, count: number, ipOf: (n: number) => string, batch = 50): Promise<Idle[]> {
  const out: Idle[] = [];
  for (let i = 0; i < count; i += batch) {
    out.push(...await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, k) => openIdle(port, ipOf(i + k)))));
  }
  return out;
}

export interface Sent {
  readonly code: number;
  readonly ms: number;
  readonly line: string;
}

/** One whole transaction on a fresh connection, as a legit MTA behind the balancer. */
export async function sendOne(port: number, ip: string, message: SoakMessage): Promise<Sent> {
  const t0 = performance.now();
  let session: SmtpSession | null = null;
  try {
    const opened = await SmtpSession.open(port, 120_000, proxyV1(ip));
    session = opened.session;
    const steps: Array<[() => Promise<{ code: number; line: string }>, number]> = [
      [() => session!.command('EHLO legit.flood.example'), 250],
      [() => session!.command(`MAIL FROM:<${message.from}>`), 250],
      [() => session!.command(`RCPT TO:<${message.to[0]}>`), 250],
      [() => session!.command('DATA'), 354],
      [() => session!.data(message.wire), 250],
    ];
    if (opened.greeting.code !== 220) return { code: opened.greeting.code, ms: performance.now() - t0, line: opened.greeting.line };
    for (const [run, ok] of steps) {
      const r = await run();
      if (r.code !== ok) return { code: r.code, ms: performance.now() - t0, line: r.line };
    }
    const ms = performance.now() - t0;
    await session.quit();
    return { code: 250, ms, line: '250' };
  } catch (err) {
    session?.destroy();
    return { code: 0, ms: performance.now() - t0, line: (err as Error).message };
  }
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** `n` legit messages from `clients` concurrent senders; latencies of the 250s. */
async function legit(port: number, next: () => Promise<SoakMessage>, n: number, clients: number): Promise<Sent[]> {
  const out: Sent[] = [];
  let left = n;
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    while (left-- > 0) out.push(await sendOne(port, `192.0.2.${10 + c}`, await next()));
  }));
  return out;
}

function env(dnsPort: number, backendPort: number): Record<string, string> {
  return {
    POSTERN_LISTEN: '127.0.0.1:0', POSTERN_HOSTNAME: 'mx.postern.flood', POSTERN_DOMAINS: RECIPIENT_DOMAIN,
    POSTERN_BACKEND_HOST: '127.0.0.1', POSTERN_BACKEND_PORT: String(backendPort), POSTERN_BACKEND_POOL_SIZE: '64',
    POSTERN_DNS_SERVERS: `127.0.0.1:${dnsPort}`, POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_POLICIES: path.join(ROOT, 'policies'),
    POSTERN_PROXY_PROTOCOL_TRUSTED: '127.0.0.1/32',
    POSTERN_LIMITS_MAX_CONNECTIONS: String(FLOOD.maxConnections), POSTERN_LIMITS_MAX_CONNECTIONS_PER_IP: String(FLOOD.perIp),
    POSTERN_LIMITS_MAX_BYTES_IN_FLIGHT: String(FLOOD.budget), POSTERN_LIMITS_DATA_TIMEOUT_MS: '120000',
    ...unlimitedRates(),
  };
}

export async function runFloods(progress: (line: string) => void = () => undefined): Promise<FloodReport> {
  const mail = soakMail(`flood${Date.now().toString(36)}`);
  const dns = await startDnsServer(mail.zone());
  const backend = await startSoakBackend();
  backend.keep = false;
  let gw: ChildGateway | null = null;
  try {
    gw = await startChildGateway(env(dns.port, backend.port));
    let n = 0;
    const next = (): Promise<SoakMessage> => mail.make(n++ * 50 + 1); // never the 300 KB ones (n % 50 === 0)
    const lines: string[] = [];
    const problems: string[] = [];
    await slowloris(gw, next, lines, problems, progress);
    await uploads(gw, next, lines, problems, progress);
    return { lines, problems };
  } finally {
    await gw?.kill();
    await backend.close();
    await dns.close();
  }
}

async function slowloris(gw: ChildGateway, next: () => Promise<SoakMessage>, lines: string[], problems: string[], progress: (l: string) => void): Promise<void> {
  const port = gw.smtpPort;
  await legit(port, next, 40, 4); // warm-up
  progress('  slowloris: baseline latency');
  const quiet = await legit(port, next, 300, 4);
  progress(`  slowloris: opening ${FLOOD.idle} idle connections`);
  const idle = await openMany(port, FLOOD.idle, floodIp);
  const held = idle.filter((c) => c.greeting.startsWith('220')).length;
  const open = (await scrape(gw.httpPort)).get('postern_connections_open') ?? NaN;
  progress('  slowloris: latency under the flood');
  const flooded = await legit(port, next, 300, 4);
  // the caps while the flood holds them: one more from a flood address, then new addresses until refused
  const perIp = await openIdle(port, floodIp(0));
  const extra = await openMany(port, FLOOD.maxConnections - FLOOD.idle + 10, (k) => `10.78.${Math.floor(k / 250)}.${1 + (k % 250)}`);
  const admitted = extra.filter((c) => c.greeting.startsWith('220')).length;
  const refusedTotal = extra.find((c) => !c.greeting.startsWith('220'))?.greeting ?? '(none refused)';
  for (const c of [...idle, perIp, ...extra]) c.close();

  const ok = (s: Sent[]): number[] => s.filter((x) => x.code === 250).map((x) => x.ms);
  const [q, f] = [ok(quiet), ok(flooded)];
  const ratio = percentile(f, 99) / percentile(q, 99);
  lines.push(
    `Slowloris: ${held}/${FLOOD.idle} idle connections held (${FLOOD.idle / FLOOD.perIp} client addresses x ${FLOOD.perIp}, via PROXY from a trusted 127.0.0.1), postern_connections_open ${open}`,
    `  legit client, fresh connection per message, 4 concurrent:   p50        p99      delivered`,
    `    without the flood                                    ${percentile(q, 50).toFixed(0).padStart(6)} ms ${percentile(q, 99).toFixed(0).padStart(7)} ms   ${q.length}/${quiet.length}`,
    `    with ${FLOOD.idle} idle connections                          ${percentile(f, 50).toFixed(0).padStart(6)} ms ${percentile(f, 99).toFixed(0).padStart(7)} ms   ${f.length}/${flooded.length}`,
    `    p99 ratio ${ratio.toFixed(2)}x (limit 2x)`,
    `  per-IP cap ${FLOOD.perIp}: connection ${FLOOD.perIp + 1} from a flood address got "${perIp.greeting}"`,
    `  total cap ${FLOOD.maxConnections}: ${admitted} more admitted over the flood, then "${refusedTotal}"`,
  );
  if (!(ratio <= 2)) problems.push(`slowloris raised the legit p99 ${ratio.toFixed(2)}x (over 2x)`);
  if (held !== FLOOD.idle || f.length !== flooded.length) problems.push('the flood was not held up to the limits, or legit messages failed under it');
  if (!perIp.greeting.startsWith('421 4.7.0')) problems.push(`per-IP cap did not hold: ${perIp.greeting}`);
  if (!refusedTotal.startsWith('421') || admitted > FLOOD.maxConnections - FLOOD.idle) problems.push(`total cap did not hold: ${admitted} admitted over ${FLOOD.idle}`);
}

/** One upload of `wire` on a fresh connection: the final reply, or the step that refused it. */
async function upload(port: number, ip: string, wire: Buffer): Promise<{ code: number; line: string }> {
  let session: SmtpSession | null = null;
  try {
    const opened = await SmtpSession.open(port, 120_000, proxyV1(ip));
    session = opened.session;
    if (opened.greeting.code !== 220) return opened.greeting;
    for (const [line, ok] of [['EHLO big.flood.example', 250], ['MAIL FROM:<big@plain.example>', 250], [`RCPT TO:<user@${RECIPIENT_DOMAIN}>`, 250], ['DATA', 354]] as const) {
      const r = await session.command(line);
      if (r.code !== ok) return r;
    }
    return await session.data(wire);
  } catch (err) {
    return { code: 0, line: `    ${(err as Error).message}` };
  } finally {
    await session?.quit().catch(() => undefined);
    session?.destroy();
  }
}

/** A large message for the upload flood: dot-stuffing-free filler, headers enough to be relayed. */
function bigMessage(n: number, bytes: number): Buffer {
  const line = 'U'.repeat(998) + '\r\n';
  return Buffer.from(`From: <big${n}@${RECIPIENT_DOMAIN}>\r\nSubject: upload ${n}\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}`);
}

async function uploads(gw: ChildGateway, next: () => Promise<SoakMessage>, lines: string[], problems: string[], progress: (l: string) => void): Promise<void> {
  const port = gw.smtpPort;
  const baseline = rssBytes(gw.pid);
  resetPeakRss(gw.pid);
  const big = bigMessage(0, FLOOD.bigBytes);
  const codes = new Map<string, number>();
  let stop = false;
  progress('  uploads: 40 clients sending 9 MB messages as fast as they can');
  const flooders = Array.from({ length: 40 }, async (_, c) => {
    while (!stop) {
      const r = await upload(port, `10.79.0.${c + 1}`, big);
      const key = `${r.code} ${r.line.slice(4, 9)}`.trim();
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
  });
  await sleep(2_000); // the flood is under way (a scenario's pacing, not a wait for a result)
  const during = await legit(port, next, 200, 4);
  stop = true;
  await Promise.all(flooders);
  const peak = peakRssBytes(gw.pid);
  const fast = { peak, during };

  progress('  uploads: 10 clients sending 9 MB and holding before the final dot, one more filling the budget to the brim');
  const hold = async (ip: string, wire: Buffer): Promise<SmtpSession> => {
    const { session } = await SmtpSession.open(port, 120_000, proxyV1(ip));
    await session.command('EHLO hold.flood.example');
    const steps = [[`MAIL FROM:<hold@plain.example>`, 250], [`RCPT TO:<user@${RECIPIENT_DOMAIN}>`, 250], ['DATA', 354]] as const;
    for (const [line, ok] of steps) if ((await session.command(line)).code !== ok) return session;
    await session.write(wire);
    return session;
  };
  const inflight = async (): Promise<number> => (await scrape(gw.httpPort)).get('postern_inflight_bytes') ?? NaN;
  const holders = await Promise.all(Array.from({ length: 10 }, (_, c) => hold(`10.80.0.${c + 1}`, big)));
  await sleep(2_000); // their bytes have reached the gateway (pacing of the scenario)
  const heldBig = await inflight();
  // an attacker who probes the free space (452 or not) can fill it to within a few bytes
  holders.push(await hold('10.80.1.1', bigMessage(1, FLOOD.budget - heldBig - 1_000)));
  await sleep(1_000);
  const heldBytes = await inflight();
  const whileHeld = await legit(port, next, 40, 4);
  for (const s of holders) s.destroy();

  const count = (s: Sent[], code: number): number => s.filter((x) => x.code === code).length;
  lines.push(
    `Large uploads: in-flight budget ${FLOOD.budget / MB} MiB, messages of ${(FLOOD.bigBytes / 1e6).toFixed(0)} MB`,
    `  40 clients uploading as fast as they can: ${[...codes].map(([k, v]) => `${k} x${v}`).join(', ')}`,
    `    gateway RSS: baseline ${(baseline / MB).toFixed(0)} MB, peak ${(fast.peak / MB).toFixed(0)} MB = baseline + ${((fast.peak - baseline) / FLOOD.budget).toFixed(2)} x budget`,
    `    small legit messages meanwhile: ${count(fast.during, 250)}/${fast.during.length} got 250, ${count(fast.during, 452)} got 452 4.3.1, p99 ${percentile(fast.during.filter((x) => x.code === 250).map((x) => x.ms), 99).toFixed(0)} ms`,
    `  10 clients holding 9 MB each before the final dot (postern_inflight_bytes ${(heldBig / MB).toFixed(1)} MiB), one more filling it to ${(heldBytes / MB).toFixed(1)} MiB:`,
    `    small legit messages meanwhile: ${count(whileHeld, 250)}/${whileHeld.length} got 250, ${count(whileHeld, 452)} got 452 4.3.1 (the budget is first come, first served: uploads held at the brim defer new mail until they finish or limits.dataTimeoutMs)`,
  );
  // the budget counts the bytes kept; reading, authenticating and rewriting copy them (about 4x measured)
  if (fast.peak - baseline > 5 * FLOOD.budget) problems.push(`upload flood: RSS grew ${((fast.peak - baseline) / MB).toFixed(0)} MB, over 5x the budget`);
  if (count(fast.during, 250) === 0) problems.push('no small legit message got through the upload flood');
}
