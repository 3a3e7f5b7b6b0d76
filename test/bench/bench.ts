/**
 * `make bench`: throughput, latency and cost of the gateway, and the same load sent straight
 * to the sink for comparison. Everything on 127.0.0.1: a loopback DNS server publishing SPF,
 * DKIM and DMARC p=reject for the sender, a sink as the backend (both in this process) and the
 * gateway as a child process (`src/main.ts serve`), measured alone through /proc (its workers
 * included).
 *
 * usage: node test/bench/bench.ts [--repeat N] [--list] [PATTERN…]
 *   PATTERN   regular expressions on point names (scenarios.ts); none = every point
 *   --repeat  run each point N times (targets alternating) and print medians
 *   --list    print the point names and exit
 * Environment: BENCH_SCALE=0.2 shortens every point; BENCH_GATEWAY_NODE_ARGS passes Node.js
 * options to the gateway (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"); BENCH_FLOOD_CLIENTS and
 * BENCH_FLOOD_MB size the flood scenario; REDIS_URL the Redis of the store comparison.
 *
 * smtp-server waits before its greeting (limits.greetingDelayMs, 100 ms by default: early-talker
 * detection), so with a fresh connection per message, concurrency C gives at most C / 0.1 s
 * messages per second, through the gateway and straight to the sink alike. The high-concurrency
 * and connection-reusing points show capacity; CPU per message is not hidden by the pause.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { sharedRedisAvailable, sharedRedisUrl } from '../harness/redis.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { runPoint, type PointResult, type PointSpec } from './load.ts';
import { prepareMail, RECIPIENT_DOMAIN, type SignedSet } from './mail.ts';
import { clockTicksPerSecond, cpuSeconds, peakRssBytes, resetPeakRss } from './proc.ts';
import { LEGEND, medianRow, table, type Row } from './report.ts';
import { SCENARIOS, selectPoints, SIZES, WARM_UP, type PointDef, type ScenarioDef, type TargetSpec } from './scenarios.ts';
import { startBenchSink, type BenchSink } from './sink.ts';

const SIGNED_PER_SIZE = 32;
const REPLY_TIMEOUT_MS = 30_000;
const FLOOD_CLIENTS = Number(process.env.BENCH_FLOOD_CLIENTS ?? '100');
const FLOOD_BYTES = Number(process.env.BENCH_FLOOD_MB ?? '5') * 1024 * 1024;
const REDIS_URL = sharedRedisUrl();
const NODE_ARGS = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

interface World {
  readonly sink: BenchSink;
  readonly dns: DnsTestServer;
  readonly sets: ReadonlyMap<string, SignedSet>;
  readonly ticks: number;
  readonly redis: boolean;
  readonly redisPrefix: string;
}

interface Measured {
  readonly row: Row;
  readonly errors: ReadonlyMap<string, number>;
  readonly gatewayOutput: readonly string[];
}

/** One run of the load against the gateway (or the sink), read from /proc around it. */
async function measure(world: World, target: string, gateway: GatewayProcess | null, spec: PointSpec, set: SignedSet, label: string): Promise<Measured> {
  const { sink, ticks } = world;
  sink.take(); // forget whatever a previous point left behind
  if (gateway) resetPeakRss(gateway.pid);
  const cpuBefore = gateway ? cpuSeconds(gateway.pid, ticks) : 0;
  const ownBefore = process.cpuUsage();
  const result = await runPoint({ port: gateway ? gateway.smtpPort : sink.port, spec, messages: set.wire, label, replyTimeoutMs: REPLY_TIMEOUT_MS });
  const row = toRow(world, target, gateway, spec, result, { cpuBefore, ownBefore, records: await settle(world) });
  return { row, errors: result.errors, gatewayOutput: gateway?.drainOutput() ?? [] };
}

/** A message whose client timed out may still reach the sink: wait a moment, then take what arrived. */
async function settle(world: World): Promise<ReturnType<BenchSink['take']>> {
  await sleep(100);
  return world.sink.take();
}

function toRow(world: World, target: string, gateway: GatewayProcess | null, spec: PointSpec, result: PointResult,
  before: { cpuBefore: number; ownBefore: NodeJS.CpuUsage; records: ReturnType<BenchSink['take']> }): Row {
  const own = process.cpuUsage(before.ownBefore);
  const atSink = new Set(before.records.map((r) => r.sender));
  const accepted = new Set(result.accepted);
  return {
    target,
    concurrency: spec.concurrency,
    mode: spec.mode,
    started: result.started,
    accepted: result.accepted.length,
    errors: [...result.errors.values()].reduce((a, b) => a + b, 0),
    missing: result.accepted.filter((s) => !atSink.has(s)).length,
    extra: before.records.filter((r) => !accepted.has(r.sender)).length,
    unauthenticated: gateway ? before.records.filter((r) => !r.authenticated).length : null,
    elapsedMs: result.elapsedMs,
    latenciesMs: result.latenciesMs,
    cpuSeconds: gateway ? cpuSeconds(gateway.pid, world.ticks) - before.cpuBefore : null,
    peakRssBytes: gateway ? peakRssBytes(gateway.pid) : null,
    benchCpuSeconds: (own.user + own.system) / 1e6,
  };
}

/**
 * Large uploads (FLOOD_CLIENTS clients, FLOOD_BYTES each, fresh connections) while the point's
 * own clients send small messages: does the gateway's memory stay bounded, and does small mail
 * still flow? Two rows: the small messages, then the large ones.
 */
async function measureFlood(world: World, target: string, gateway: GatewayProcess, spec: PointSpec, set: SignedSet, label: string): Promise<Measured[]> {
  const big = world.sets.get('flood')!;
  world.sink.take();
  resetPeakRss(gateway.pid);
  const cpuBefore = cpuSeconds(gateway.pid, world.ticks);
  const ownBefore = process.cpuUsage();
  const floodSpec: PointSpec = { ...spec, concurrency: FLOOD_CLIENTS, maxMessages: FLOOD_CLIENTS * 20 };
  const [small, large] = await Promise.all([
    runPoint({ port: gateway.smtpPort, spec, messages: set.wire, label, replyTimeoutMs: REPLY_TIMEOUT_MS }),
    runPoint({ port: gateway.smtpPort, spec: floodSpec, messages: big.wire, label: `${label}-flood`, replyTimeoutMs: 120_000 }),
  ]);
  const records = await settle(world);
  const cpu = cpuSeconds(gateway.pid, world.ticks) - cpuBefore;
  const rows = [
    toRow(world, `${target}-small`, gateway, spec, small, { cpuBefore, ownBefore, records }),
    toRow(world, `${target}-large`, gateway, floodSpec, large, { cpuBefore, ownBefore, records }),
  ];
  // One run, two rows: CPU per message means nothing when both kinds share it; the cores the
  // gateway used and the bytes it took in are a note instead.
  rows[0] = { ...rows[0]!, cpuSeconds: null, extra: 0 };
  rows[1] = { ...rows[1]!, cpuSeconds: null, extra: 0 };
  const output = [
    `(flood) gateway used ${(cpu / (Math.max(small.elapsedMs, large.elapsedMs) / 1000)).toFixed(2)} cores; ${large.accepted.length} large messages of ${(FLOOD_BYTES / 1048576).toFixed(0)} MB accepted`,
    ...gateway.drainOutput(),
  ];
  return [{ row: rows[0], errors: small.errors, gatewayOutput: output }, { row: rows[1], errors: large.errors, gatewayOutput: [] }];
}

function details(measured: readonly Measured[]): string[] {
  const out: string[] = [];
  for (const { row, errors, gatewayOutput } of measured) {
    const where = `${row.target} c=${row.concurrency} ${row.mode}`;
    for (const [what, n] of errors) out.push(`  ${where}: ${n} x ${what}`);
    if (row.missing > 0) out.push(`  ${where}: ${row.missing} message(s) got 250 but never reached the sink`);
    if (row.extra > 0) out.push(`  ${where}: ${row.extra} message(s) reached the sink without a 250 to the client`);
    if (row.unauthenticated) out.push(`  ${where}: ${row.unauthenticated} message(s) relayed without dkim=pass and dmarc=pass`);
    const notes = gatewayOutput.filter((l) => l.startsWith('(flood)'));
    const logged = gatewayOutput.filter((l) => !l.startsWith('(flood)'));
    for (const note of notes) out.push(`  ${where}: ${note.slice('(flood) '.length)}`);
    if (logged.length > 0) {
      out.push(`  ${where}: gateway wrote ${logged.length} log line(s) at warn or above, e.g.:`);
      for (const line of logged.slice(0, 3)) out.push(`    ${line.slice(0, 300)}`);
    }
  }
  return out;
}

async function startTarget(world: World, spec: TargetSpec): Promise<GatewayProcess | null> {
  if (spec.kind === 'direct') return null;
  if (spec.redis && !world.redis) return null;
  return startGatewayProcess({
    dnsPort: world.dns.port, backendPort: world.sink.port, domains: [RECIPIENT_DOMAIN],
    config: spec.config, nodeArgs: NODE_ARGS,
    ...(spec.redis ? { redis: { url: REDIS_URL, keyPrefix: world.redisPrefix } } : {}),
  });
}

/** Runs a scenario's selected points, `repeat` times each, and prints its table(s). */
async function runScenario(world: World, scenario: ScenarioDef, selected: readonly PointDef[], repeat: number, live: Set<GatewayProcess>): Promise<string> {
  process.stdout.write(`\n${scenario.name}: ${scenario.title}\n`);
  const gateways = new Map<string, GatewayProcess | null>();
  const skipped: string[] = [];
  try {
    for (const target of new Set(selected.map((p) => p.target))) {
      const gw = await startTarget(world, scenario.targets[target]!);
      if (gw) live.add(gw);
      if (!gw && scenario.targets[target]!.kind === 'gateway') skipped.push(`${target}: skipped, no Redis answers at ${REDIS_URL} (set REDIS_URL)`);
      gateways.set(target, gw);
      const size = selected.find((p) => p.target === target)!.size;
      if (gw || scenario.targets[target]!.kind === 'direct') {
        const warm = await measure(world, target, gw, WARM_UP, world.sets.get(size)!, `${scenario.name}-${target}-warm`);
        if (warm.row.accepted === 0) throw new Error(`warm-up of ${scenario.name}/${target} failed:\n${details([warm]).join('\n')}`);
      }
    }
    const runs = new Map<string, Measured[][]>();
    for (let round = 0; round < repeat; round++) {
      for (const point of selected) {
        const gw = gateways.get(point.target) ?? null;
        if (!gw && scenario.targets[point.target]!.kind === 'gateway') continue;
        const label = `${point.name.replace(/\//g, '-')}-${round}`;
        const set = world.sets.get(point.size)!;
        const got = point.kind === 'flood' ? await measureFlood(world, point.target, gw!, point.spec, set, label) : [await measure(world, point.target, gw, point.spec, set, label)];
        for (const m of got) {
          const rate = m.row.accepted / (m.row.elapsedMs / 1000);
          process.stdout.write(`  ${point.name} ${m.row.target}  ${m.row.accepted}/${m.row.started} ok, ${rate.toFixed(1)} msg/s\n`);
        }
        const list = runs.get(point.name) ?? [];
        list.push(got);
        runs.set(point.name, list);
      }
    }
    const sections: string[] = [];
    for (const size of SIZES.map((s) => s.name)) {
      const here = selected.filter((p) => p.size === size && runs.has(p.name));
      if (here.length === 0) continue;
      const measured = here.flatMap((p) => {
        const all = runs.get(p.name)!;
        return all[0]!.map((m, i) => ({ row: medianRow(all.map((r) => r[i]!.row)), errors: mergeErrors(all.map((r) => r[i]!.errors)), gatewayOutput: all.flatMap((r) => r[i]!.gatewayOutput) }));
      });
      const notes = [...details(measured), ...skipped.map((s) => `  ${s}`)];
      sections.push(`== ${scenario.name} (${size}): ${scenario.title} ==\n${table(measured.map((m) => m.row))}\n${notes.length > 0 ? `failures and notes:\n${notes.join('\n')}` : 'no errors: every 250 matched a message at the sink; every relayed message carried dkim=pass and dmarc=pass'}\n`);
    }
    return sections.join('\n');
  } finally {
    for (const gw of gateways.values()) {
      if (!gw) continue;
      await gw.stop();
      live.delete(gw);
    }
  }
}

function mergeErrors(maps: ReadonlyArray<ReadonlyMap<string, number>>): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, n] of m) out.set(k, (out.get(k) ?? 0) + n);
  return out;
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
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string' }, list: { type: 'boolean' } } });
  if (values.list) {
    for (const s of SCENARIOS) for (const p of s.points) process.stdout.write(`${p.name}\n`);
    return;
  }
  const repeat = Math.max(1, Number(values.repeat ?? '1') || 1);
  const selection = selectPoints(positionals);
  if (selection.length === 0) throw new Error(`no point matches ${positionals.join(' ')} (--list shows them)`);
  const began = Date.now();
  process.stdout.write(`postern benchmark: node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, scale ${process.env.BENCH_SCALE ?? '1'}, repeat ${repeat}\n`);
  const flood = selection.some((s) => s.points.some((p) => p.kind === 'flood'));
  const mail = await prepareMail([...SIZES, ...(flood ? [{ name: 'flood', bytes: FLOOD_BYTES, count: 1 }] : [])], SIGNED_PER_SIZE);
  const dns = await startDnsServer(mail.zone);
  const sink = await startBenchSink();
  const redisPrefix = `postern-bench:${process.pid}:`;
  const redis = selection.some((s) => s.points.some((p) => { const t = s.scenario.targets[p.target]; return t?.kind === 'gateway' && t.redis; })) && await sharedRedisAvailable();
  const world: World = { sink, dns, sets: new Map(mail.sets.map((s) => [s.size.name, s])), ticks: clockTicksPerSecond(), redis, redisPrefix };
  const live = new Set<GatewayProcess>();
  const onSignal = (): void => {
    for (const gw of live) gw.kill();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => { for (const gw of live) gw.kill(); });
  process.stdout.write(`backend sink 127.0.0.1:${sink.port}, DNS 127.0.0.1:${dns.port}${NODE_ARGS.length ? `, gateway node options ${NODE_ARGS.join(' ')}` : ''}\n`);
  const reports: string[] = [];
  try {
    for (const { scenario, points } of selection) reports.push(await runScenario(world, scenario, points, repeat, live));
    process.stdout.write(`\n${reports.join('\n')}\n${LEGEND}\n\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s\n`);
  } finally {
    for (const gw of live) await gw.stop();
    if (redis) await dropKeys(REDIS_URL, redisPrefix);
    await sink.close();
    await dns.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
