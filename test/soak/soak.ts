/**
 * The fault soak: the gateway as a child process (`src/main.ts serve`, so RSS and restarts are
 * real) between a loopback DNS server, a private Redis and the soak backend, fed by many
 * concurrent senders while the fault schedule breaks the backend, Redis and DNS in turn.
 * At the end the books must balance exactly (accounting.ts), no session may be left open,
 * RSS must be back near its idle baseline and the process must be the one that started.
 *
 * `make soak` runs it for minutes (soak-main.ts); test/soak/soak.test.ts runs a short one.
 */
import path from 'node:path';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer } from '../harness/dns-server.ts';
import { scrape, type Series } from '../harness/metrics.ts';
import { startRedisServer } from '../harness/redis.ts';
import { freePort } from '../bench/gateway-process.ts';
import { peakRssBytes, resetPeakRss, rssBytes } from '../bench/proc.ts';
import { balance, booksTable, imbalances, type Books } from './accounting.ts';
import { startSoakBackend } from './backend.ts';
import { runClients, type ClientStats, type Delivery } from './client.ts';
import { runSchedule, type World } from './faults.ts';
import { collectGarbage } from './inspector.ts';
import { RECIPIENT_DOMAIN, soakMail, type SoakMessage } from './messages.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MB = 1024 * 1024;

export interface SoakOptions {
  /** How long new messages are started for (faults cycle meanwhile). */
  readonly seconds: number;
  readonly clients: number;
  /** How long each fault lasts, and the calm after it. */
  readonly phaseMs: number;
  readonly calmMs: number;
  /** Messages sent calmly first, before the idle RSS baseline is read. */
  readonly warmMessages: number;
  /** Share of final dots after which a client resets its connection. */
  readonly abortRate: number;
  readonly maxAttempts?: number;
  /** Progress lines (phases); the table is returned. */
  readonly progress?: (line: string) => void;
}

export interface SoakResult {
  readonly books: Books;
  /** Everything that must be zero or true and is not; empty means the soak passed. */
  readonly problems: string[];
  /** The accounting table and the figures, ready to print. */
  readonly report: string[];
}

/** Rate limits that never bind (every sender is on loopback): the limits would measure themselves. */
export function unlimitedRates(): Record<string, string> {
  return Object.fromEntries(['IP_CONNECTIONS', 'NET_CONNECTIONS', 'IP_MESSAGES', 'NET_MESSAGES', 'DOMAIN_MESSAGES', 'IP_RECIPIENTS', 'NET_RECIPIENTS', 'RCPT_MESSAGES']
    .flatMap((k): Array<[string, string]> => [[`POSTERN_RATE_LIMITS_${k}_RATE`, '10000000/min'], [`POSTERN_RATE_LIMITS_${k}_BURST`, '10000000']]));
}

/** The gateway as an operator would configure it, with timeouts short enough for minutes of faults. */
function gatewayEnv(dnsPort: number, backendPort: number, redisUrl: string): Record<string, string> {
  return {
    POSTERN_LISTEN: '127.0.0.1:0',
    // one process: RSS after a full GC is read through its inspector (workers would need one each)
    POSTERN_WORKERS: '1',
    POSTERN_HOSTNAME: 'mx.postern.soak',
    POSTERN_DOMAINS: RECIPIENT_DOMAIN,
    POSTERN_BACKEND_HOST: '127.0.0.1',
    POSTERN_BACKEND_PORT: String(backendPort),
    POSTERN_BACKEND_CONNECT_TIMEOUT_MS: '2000',
    POSTERN_BACKEND_COMMAND_TIMEOUT_MS: '3000',
    POSTERN_BACKEND_DATA_TIMEOUT_MS: '6000',
    POSTERN_DNS_SERVERS: `127.0.0.1:${dnsPort}`,
    POSTERN_DNS_TIMEOUT_MS: '400',
    POSTERN_DNS_ATTEMPTS: '1',
    POSTERN_DNS_MAX_TTL_SECONDS: '1',
    POSTERN_DNS_MAX_NEGATIVE_TTL_SECONDS: '1',
    POSTERN_REDIS_URL: redisUrl,
    POSTERN_METRICS_LISTEN: '127.0.0.1:0',
    POSTERN_POLICIES: path.join(ROOT, 'policies'),
    // every sender is 127.0.0.1: connection caps and rate limits would measure themselves, not the faults
    POSTERN_LIMITS_MAX_CONNECTIONS_PER_IP: '1000',
    ...unlimitedRates(),
  };
}

const value = (s: Series, name: string): number => s.get(name) ?? NaN;
const mb = (bytes: number): string => (bytes / MB).toFixed(0);
/** Memory V8 and Buffers hold alive (after a full GC it is what is still referenced). */
const live = (m: Series): number => value(m, 'postern_nodejs_heap_size_used_bytes') + value(m, 'postern_nodejs_external_memory_bytes');

/** Polls `check` until it holds or the deadline passes; false then (the caller reports it). */
async function settles(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const idle = (gw: ChildGateway) => async (): Promise<boolean> => {
  const m = await scrape(gw.httpPort);
  return value(m, 'postern_sessions_in_flight') === 0 && value(m, 'postern_connections_open') === 0;
};

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const run = Date.now().toString(36);
  const mail = soakMail(run);
  const dns = await startDnsServer(mail.zone());
  const backend = await startSoakBackend();
  const redis = await startRedisServer();
  const world: World = { backend, redis, dns, mail };
  let gw: ChildGateway | null = null;
  try {
    const inspectPort = await freePort();
    gw = await startChildGateway({ ...gatewayEnv(dns.port, backend.port, redis.url), NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` });
    return await soakWith(gw, inspectPort, world, opts);
  } finally {
    await gw?.kill();
    await backend.close();
    await redis.stop();
    await dns.close();
  }
}

async function soakWith(gw: ChildGateway, inspectPort: number, world: World, opts: SoakOptions): Promise<SoakResult> {
  const problems: string[] = [];
  const maxAttempts = opts.maxAttempts ?? 25;
  let n = 0;
  const supply = (more: () => boolean) => async (): Promise<SoakMessage | null> => (more() ? world.mail.make(n++) : null);
  const clients = (next: () => Promise<SoakMessage | null>) =>
    runClients({ port: gw.smtpPort, clients: opts.clients, replyTimeoutMs: 60_000, maxAttempts, abortRate: opts.abortRate, next });

  // Warm-up, calm: the code paths are loaded and the pools filled before the baseline is read.
  const warm = await clients(supply(() => n < opts.warmMessages));
  if (!await settles(idle(gw), 60_000)) problems.push('sessions still open after the warm-up');
  await collectGarbage(inspectPort);
  const baseline = rssBytes(gw.pid);
  resetPeakRss(gw.pid);
  const startedAt = Date.now();
  const before = await scrape(gw.httpPort);

  const deadline = startedAt + opts.seconds * 1000;
  const [main, schedule] = await Promise.all([
    clients(supply(() => Date.now() < deadline)),
    runSchedule(world, { phaseMs: opts.phaseMs, calmMs: opts.calmMs, until: () => Date.now() >= deadline, onPhase: (p) => opts.progress?.(`  ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s  ${p}`) }),
  ]);
  const elapsed = (Date.now() - startedAt) / 1000;

  if (!await settles(idle(gw), 60_000)) problems.push('sessions or connections still open 60 s after the last client left');
  const after = await scrape(gw.httpPort);
  const memory = await memoryAtEnd(gw, inspectPort, baseline, before);
  problems.push(...memory.problems);

  const deliveries: Delivery[] = [...warm.deliveries, ...main.deliveries];
  const books = balance(deliveries, world.backend.messages);
  problems.push(...imbalances(books));
  const restarts = gw.logs.filter((l) => l.msg === 'postern listening').length - 1;
  const alive = await Promise.race([gw.exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 100))]);
  if (!alive || restarts !== 0) problems.push(`gateway process ${alive ? 'restarted' : 'exited'} during the soak`);
  const internal = value(after, 'postern_transaction_endings_total{ending="internal-error"}') || 0;
  if (internal > 0) problems.push(`${internal} transaction(s) ended in an internal error (451 4.3.0)`);
  if (main.stats.timeouts + warm.stats.timeouts > 0) problems.push(`${main.stats.timeouts + warm.stats.timeouts} reply(ies) never came within 60 s`);

  const report = [
    `Soak: ${elapsed.toFixed(0)} s of faults, ${opts.clients} concurrent clients, gateway pid ${gw.pid}`,
    ...booksTable(books, maxAttempts),
    '',
    'Faults:',
    ...[...schedule.ran].map(([name, times]) => `  ${name}: ${times}x`),
    `  backend faults injected by step: ${[...world.backend.injected].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    '',
    'Clients:',
    `  transactions ${main.stats.transactions + warm.stats.transactions}; replies: ${replySummary(main.stats)}`,
    `  socket errors before the final dot: ${[...main.stats.socketErrors].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    '',
    'Gateway:',
    `  restarts ${restarts}, alive ${alive}; sessions in flight ${value(after, 'postern_sessions_in_flight')}, connections open ${value(after, 'postern_connections_open')}, bytes in flight ${value(after, 'postern_inflight_bytes')}`,
    ...memory.lines,
    `  transaction endings during the faults: ${endings(before, after)}`,
    '',
    problems.length === 0 ? 'RESULT: zero lost, zero duplicated, zero stray; books balance' : `RESULT: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`,
  ];
  return { books, problems, report };
}

/**
 * RSS and live memory at the end against the baseline, both read after a full GC: a leak is
 * memory still referenced (heap used + external) above the baseline by more than 16 MB (a few
 * KB per message over thousands shows above it); RSS must be "near": V8 and the allocator keep
 * some of the pages a peak made them take (committed heap, malloc arenas) and give back the rest.
 */
async function memoryAtEnd(gw: ChildGateway, inspectPort: number, baseline: number, before: Series): Promise<{ problems: string[]; lines: string[] }> {
  const problems: string[] = [];
  const peak = peakRssBytes(gw.pid);
  const uncollected = rssBytes(gw.pid);
  await collectGarbage(inspectPort);
  const end = rssBytes(gw.pid);
  const last = await scrape(gw.httpPort);
  if (live(last) > live(before) + 16 * MB) problems.push(`live memory after a full GC ${mb(live(last))} MB, baseline ${mb(live(before))} MB: a leak`);
  const bound = baseline * 1.5 + 32 * MB;
  if (end > bound) problems.push(`RSS ${mb(end)} MB after a full GC, above ${mb(bound)} MB (baseline ${mb(baseline)} MB)`);
  const heap = (m: Series): string => `heap used ${mb(value(m, 'postern_nodejs_heap_size_used_bytes'))} of ${mb(value(m, 'postern_nodejs_heap_size_total_bytes'))} MB, external ${mb(value(m, 'postern_nodejs_external_memory_bytes'))} MB`;
  return {
    problems,
    lines: [
      `  RSS: idle baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, end ${mb(uncollected)} MB idle, ${mb(end)} MB after a full GC (bound ${mb(bound)} MB; baseline and end read after a full GC)`,
      `  baseline ${heap(before)}; end ${heap(last)}`,
    ],
  };
}

function replySummary(stats: ClientStats): string {
  return [...stats.replies].filter(([k]) => !k.endsWith(' 250') && !k.endsWith(' 354')).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'all positive';
}

function endings(before: Series, after: Series): string {
  const out: string[] = [];
  for (const [series, v] of after) {
    const m = /^postern_transaction_endings_total\{ending="([^"]+)"\}$/.exec(series);
    const d = v - (before.get(series) ?? 0);
    if (m && d > 0) out.push(`${m[1]} ${d}`);
  }
  return out.join(', ');
}
