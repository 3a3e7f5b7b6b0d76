/** Figures of one benchmark point and the plain-text tables the benchmark prints. */
import type { Mode } from './load.ts';

export interface Row {
  /** gateway: memory rate store; gateway-redis: the same with the store in Redis; direct: the sink alone;
   * +dmarc: DMARC aggregate report collection on (local SQLite store, or Redis for gateway-redis+dmarc). */
  readonly target: 'gateway' | 'gateway-redis' | 'direct' | 'gateway+dmarc' | 'gateway-redis+dmarc';
  readonly concurrency: number;
  readonly mode: Mode;
  readonly started: number;
  readonly accepted: number;
  /** Non-250 replies and socket failures. */
  readonly errors: number;
  /** 250 at the client but no such message at the sink (must be 0). */
  readonly missing: number;
  /** Message at the sink whose client saw no 250 (a timeout after the backend's 250). */
  readonly extra: number;
  /** Accepted through the gateway but without dkim=pass and dmarc=pass in its Authentication-Results. */
  readonly unauthenticated: number | null;
  readonly elapsedMs: number;
  readonly latenciesMs: readonly number[];
  /** Gateway process CPU seconds used during the point; null for direct. */
  readonly cpuSeconds: number | null;
  readonly peakRssBytes: number | null;
  /** CPU seconds of the bench process itself (load generator, sink, DNS) during the point. */
  readonly benchCpuSeconds: number;
}

/** Nearest-rank percentile of unsorted values (NaN when empty). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

const COLUMNS = [
  ['target', 19], ['conc', 5], ['mode', 6], ['sent', 6], ['errors', 6], ['unverified', 10],
  ['msg/s', 7], ['p50 ms', 7], ['p99 ms', 7], ['CPU s/1k msg', 12], ['gw cores', 8], ['peak RSS MB', 11], ['bench cores', 11],
] as const;

function fixed(n: number | null, digits: number): string {
  return n === null || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

function cells(row: Row): string[] {
  const seconds = row.elapsedMs / 1000;
  const unverified = row.missing + row.extra + (row.unauthenticated ?? 0);
  return [
    row.target,
    String(row.concurrency),
    row.mode,
    String(row.started),
    String(row.errors),
    String(unverified),
    fixed(row.accepted / seconds, 1),
    fixed(percentile(row.latenciesMs, 50), 1),
    fixed(percentile(row.latenciesMs, 99), 1),
    fixed(row.cpuSeconds === null || row.accepted === 0 ? null : (row.cpuSeconds / row.accepted) * 1000, 2),
    fixed(row.cpuSeconds === null ? null : row.cpuSeconds / seconds, 2),
    fixed(row.peakRssBytes === null ? null : row.peakRssBytes / 1024 / 1024, 1),
    fixed(row.benchCpuSeconds / seconds, 2),
  ];
}

export function table(rows: readonly Row[]): string {
  const pad = (values: readonly string[]): string =>
    values.map((v, i) => (i < 3 ? v.padEnd(COLUMNS[i]![1]) : v.padStart(COLUMNS[i]![1]))).join('  ');
  const header = pad(COLUMNS.map(([name]) => name));
  return [header, '-'.repeat(header.length), ...rows.map((row) => pad(cells(row)))].join('\n');
}

export const LEGEND = `columns:
  sent         messages started (bounded by duration and count)
  errors       non-250 replies and socket failures (listed below the table)
  unverified   250 without the message at the sink + messages at the sink without a 250
               + (gateway) messages relayed without dkim=pass and dmarc=pass; must be 0
  msg/s        250s per second of wall time
  p50/p99 ms   per message; fresh: connect to the end-of-data reply (includes smtp-server's
               100 ms greeting pause); reuse: MAIL FROM to the end-of-data reply
  CPU s/1k msg gateway process user+system CPU seconds per 1,000 accepted messages
  gw cores     gateway CPU seconds per wall second (1.00 = one core busy)
  peak RSS MB  gateway VmHWM during the point
  bench cores  CPU of the bench process (load generator + sink + DNS) per wall second: near
               1.00 the bench itself, not the gateway, limits the rate`;
