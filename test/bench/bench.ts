/**
 * `make bench`: throughput, latency and cost of the gateway, and the same load sent straight
 * to the sink for comparison. Everything on 127.0.0.1: a loopback DNS server publishing SPF,
 * DKIM and DMARC p=reject for the sender, a sink as the backend (both in this process) and the
 * gateway as a child process (`src/main.ts serve`), measured alone through /proc.
 *
 * smtp-server waits 100 ms before its greeting (early-talker detection), so with a fresh
 * connection per message, concurrency C gives at most C / 0.1 s messages per second, through
 * the gateway and straight to the sink alike. The high-concurrency point and the
 * connection-reusing point show capacity; CPU per message is not hidden by the pause.
 *
 * BENCH_SCALE=0.2 shortens every point (a quick smoke run); the default run takes ~3 minutes.
 */
import os from 'node:os';
import { Redis } from 'ioredis';
import { sharedRedisAvailable, sharedRedisUrl } from '../harness/redis.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsServer } from '../harness/dns-server.ts';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { runPoint, type PointSpec } from './load.ts';
import { prepareMail, RECIPIENT_DOMAIN, type SignedSet } from './mail.ts';
import { clockTicksPerSecond, cpuSeconds, peakRssBytes, resetPeakRss } from './proc.ts';
import { LEGEND, table, type Row } from './report.ts';
import { startBenchSink, type BenchSink } from './sink.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? '1') > 0 ? Number(process.env.BENCH_SCALE ?? '1') : 1;
const SIZES = [{ name: '4kb', bytes: 4 * 1024 }, { name: '100kb', bytes: 100 * 1024 }] as const;
const SIGNED_PER_SIZE = 32;
const REPLY_TIMEOUT_MS = 30_000;

const point = (concurrency: number, mode: PointSpec['mode'], seconds: number, maxMessages: number): PointSpec =>
  ({ concurrency, mode, durationMs: seconds * 1000 * SCALE, maxMessages, messagesPerConnection: 20 });

const POINTS: readonly PointSpec[] = [
  point(1, 'fresh', 4, 200),
  point(10, 'fresh', 5, 2_000),
  point(50, 'fresh', 6, 10_000),
  point(200, 'fresh', 8, 20_000),
  point(50, 'reuse', 8, 40_000),
];
const WARM_UP = point(10, 'fresh', 1.5, 500);

interface Bench {
  readonly gateway: GatewayProcess;
  /** The same gateway with its rate/reputation store in Redis; null when no Redis answers. */
  readonly redisGateway: GatewayProcess | null;
  /** The same gateways with DMARC report collection on (local store; Redis). */
  readonly dmarcGateway: GatewayProcess;
  readonly redisDmarcGateway: GatewayProcess | null;
  readonly sink: BenchSink;
  readonly ticks: number;
}

interface Measured {
  readonly row: Row;
  readonly errors: ReadonlyMap<string, number>;
  readonly gatewayOutput: readonly string[];
}

async function measure(bench: Bench, target: Row['target'], spec: PointSpec, set: SignedSet): Promise<Measured> {
  const { sink, ticks } = bench;
  const viaGateway = target !== 'direct';
  const gateway = target === 'gateway-redis' ? bench.redisGateway!
    : target === 'gateway+dmarc' ? bench.dmarcGateway : target === 'gateway-redis+dmarc' ? bench.redisDmarcGateway! : bench.gateway;
  sink.take(); // forget whatever a previous point left behind
  if (viaGateway) resetPeakRss(gateway.pid);
  const cpuBefore = cpuSeconds(gateway.pid, ticks);
  const ownBefore = process.cpuUsage();
  const result = await runPoint({
    port: viaGateway ? gateway.smtpPort : sink.port,
    spec,
    messages: set.wire,
    label: `${set.size.name}-${target}-c${spec.concurrency}-${spec.mode}`,
    replyTimeoutMs: REPLY_TIMEOUT_MS,
  });
  const cpuAfter = cpuSeconds(gateway.pid, ticks);
  const own = process.cpuUsage(ownBefore);
  await sleep(100); // a message whose client timed out may still reach the sink
  const records = sink.take();
  const atSink = new Set(records.map((r) => r.sender));
  const accepted = new Set(result.accepted);
  const errorCount = [...result.errors.values()].reduce((a, b) => a + b, 0);
  const row: Row = {
    target,
    concurrency: spec.concurrency,
    mode: spec.mode,
    started: result.started,
    accepted: result.accepted.length,
    errors: errorCount,
    missing: result.accepted.filter((s) => !atSink.has(s)).length,
    extra: records.filter((r) => !accepted.has(r.sender)).length,
    unauthenticated: viaGateway ? records.filter((r) => !r.authenticated).length : null,
    elapsedMs: result.elapsedMs,
    latenciesMs: result.latenciesMs,
    cpuSeconds: viaGateway ? cpuAfter - cpuBefore : null,
    peakRssBytes: viaGateway ? peakRssBytes(gateway.pid) : null,
    benchCpuSeconds: (own.user + own.system) / 1e6,
  };
  return { row, errors: result.errors, gatewayOutput: gateway.drainOutput() };
}

function progress(m: Measured): void {
  const { row } = m;
  const rate = row.accepted / (row.elapsedMs / 1000);
  process.stdout.write(`  ${row.target.padEnd(7)} c=${String(row.concurrency).padEnd(3)} ${row.mode.padEnd(5)}  ${row.accepted}/${row.started} ok, ${rate.toFixed(1)} msg/s\n`);
}

function details(measured: readonly Measured[]): string[] {
  const out: string[] = [];
  for (const { row, errors, gatewayOutput } of measured) {
    const where = `${row.target} c=${row.concurrency} ${row.mode}`;
    for (const [what, n] of errors) out.push(`  ${where}: ${n} x ${what}`);
    if (row.missing > 0) out.push(`  ${where}: ${row.missing} message(s) got 250 but never reached the sink`);
    if (row.extra > 0) out.push(`  ${where}: ${row.extra} message(s) reached the sink without a 250 to the client`);
    if (row.unauthenticated) out.push(`  ${where}: ${row.unauthenticated} message(s) relayed without dkim=pass and dmarc=pass`);
    if (gatewayOutput.length > 0) {
      out.push(`  ${where}: gateway wrote ${gatewayOutput.length} log line(s) at warn or above, e.g.:`);
      for (const line of gatewayOutput.slice(0, 3)) out.push(`    ${line.slice(0, 300)}`);
    }
  }
  return out;
}

async function runSize(bench: Bench, set: SignedSet): Promise<{ rows: Row[]; notes: string[] }> {
  process.stdout.write(`\n${set.size.name}: ${set.wire.length} signed messages, mean ${set.meanBytes} bytes\n`);
  for (const target of ['gateway', 'direct'] as const) {
    const warm = await measure(bench, target, WARM_UP, set);
    if (warm.row.accepted === 0) throw new Error(`warm-up through ${target} failed:\n${details([warm]).join('\n')}`);
  }
  return grid(bench, POINTS, ['gateway', 'direct'], set);
}

/** Every point through every target, in that order, printing progress. */
async function grid(bench: Bench, points: readonly PointSpec[], targets: ReadonlyArray<Row['target']>, set: SignedSet): Promise<{ rows: Row[]; notes: string[] }> {
  const measured: Measured[] = [];
  for (const spec of points) {
    for (const target of targets) {
      const m = await measure(bench, target, spec, set);
      progress(m);
      measured.push(m);
    }
  }
  return { rows: measured.map((m) => m.row), notes: details(measured) };
}

const REDIS_URL = sharedRedisUrl();
const STORE_POINTS: readonly PointSpec[] = [point(50, 'fresh', 6, 10_000), point(50, 'reuse', 8, 40_000)];

/** The throughput cost of the shared store: the same points through the memory-store and the Redis-store gateway. */
async function runStoreComparison(bench: Bench, set: SignedSet): Promise<{ rows: Row[]; notes: string[] } | null> {
  if (!bench.redisGateway) return null;
  process.stdout.write(`\nstore comparison (${set.size.name}): memory vs Redis rate store\n`);
  await measure(bench, 'gateway-redis', WARM_UP, set);
  return grid(bench, STORE_POINTS, ['gateway', 'gateway-redis'], set);
}

/** What DMARC report collection costs on the mail path: the same points with it off and on. */
async function runDmarcComparison(bench: Bench, set: SignedSet): Promise<{ rows: Row[]; notes: string[] }> {
  process.stdout.write(`\nDMARC report collection (${set.size.name}): off vs on\n`);
  await measure(bench, 'gateway+dmarc', WARM_UP, set);
  const targets: Array<Row['target']> = ['gateway', 'gateway+dmarc'];
  if (bench.redisGateway && bench.redisDmarcGateway) {
    await measure(bench, 'gateway-redis+dmarc', WARM_UP, set);
    targets.push('gateway-redis', 'gateway-redis+dmarc');
  }
  return grid(bench, STORE_POINTS, targets, set);
}

async function dropKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

async function main(): Promise<void> {
  const began = Date.now();
  const ticks = clockTicksPerSecond();
  process.stdout.write(`postern benchmark: node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, scale ${SCALE}\n`);
  const mail = await prepareMail(SIZES, SIGNED_PER_SIZE);
  const dns = await startDnsServer(mail.zone);
  const sink = await startBenchSink();
  let gateway: GatewayProcess | null = null;
  let redisGateway: GatewayProcess | null = null;
  let dmarcGateway: GatewayProcess | null = null;
  let redisDmarcGateway: GatewayProcess | null = null;
  const redisPrefix = `postern-bench:${process.pid}:`;
  const onSignal = (): void => {
    for (const g of [gateway, redisGateway, dmarcGateway, redisDmarcGateway]) g?.kill();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const g of [gateway, redisGateway, dmarcGateway, redisDmarcGateway]) g?.kill();
  });
  try {
    gateway = await startGatewayProcess({ dnsPort: dns.port, backendPort: sink.port, domains: [RECIPIENT_DOMAIN] });
    const resettable = resetPeakRss(gateway.pid);
    process.stdout.write(`gateway pid ${gateway.pid} on 127.0.0.1:${gateway.smtpPort}, backend sink 127.0.0.1:${sink.port}, DNS 127.0.0.1:${dns.port}\n`);
    if (!resettable) process.stdout.write('note: /proc/<pid>/clear_refs not writable: peak RSS is the peak since the gateway started\n');
    if (await sharedRedisAvailable()) {
      redisGateway = await startGatewayProcess({ dnsPort: dns.port, backendPort: sink.port, domains: [RECIPIENT_DOMAIN], redis: { url: REDIS_URL, keyPrefix: redisPrefix } });
      redisDmarcGateway = await startGatewayProcess({ dnsPort: dns.port, backendPort: sink.port, domains: [RECIPIENT_DOMAIN], redis: { url: REDIS_URL, keyPrefix: redisPrefix }, dmarcReports: true });
    }
    dmarcGateway = await startGatewayProcess({ dnsPort: dns.port, backendPort: sink.port, domains: [RECIPIENT_DOMAIN], dmarcReports: true });
    const bench: Bench = { gateway, redisGateway, dmarcGateway, redisDmarcGateway, sink, ticks };
    const results: Array<{ set: SignedSet; rows: Row[]; notes: string[] }> = [];
    for (const set of mail.sets) results.push({ set, ...(await runSize(bench, set)) });
    const store = await runStoreComparison(bench, mail.sets[0]!);
    const dmarc = await runDmarcComparison(bench, mail.sets[0]!);

    for (const { set, rows, notes } of results) {
      process.stdout.write(`\n== ${set.size.name} messages (DKIM rsa-sha256 signed, mean ${set.meanBytes} bytes) ==\n${table(rows)}\n`);
      process.stdout.write(notes.length > 0
        ? `failures and notes:\n${notes.join('\n')}\n`
        : 'no errors: every 250 matched a message at the sink; every message relayed by the gateway carried dkim=pass and dmarc=pass\n');
    }
    process.stdout.write(`\n== rate/reputation store: memory vs Redis (${mail.sets[0]!.size.name}, concurrency 50) ==\n`);
    process.stdout.write(store ? `${table(store.rows)}\n${store.notes.length > 0 ? `failures and notes:\n${store.notes.join('\n')}\n` : 'no errors\n'}` : `skipped: no Redis answers at ${REDIS_URL} (set REDIS_URL)\n`);
    process.stdout.write(`\n== DMARC report collection: off vs on (${mail.sets[0]!.size.name}, concurrency 50) ==\n${table(dmarc.rows)}\n${dmarc.notes.length > 0 ? `failures and notes:\n${dmarc.notes.join('\n')}\n` : 'no errors\n'}`);
    process.stdout.write(`\n${LEGEND}\n\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s\n`);
  } finally {
    for (const g of [gateway, redisGateway, dmarcGateway, redisDmarcGateway]) await g?.stop();
    if (redisGateway) await dropKeys(REDIS_URL, redisPrefix);
    await sink.close();
    await dns.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
