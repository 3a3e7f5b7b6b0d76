/** Figures of one benchmark point and the plain-text tables the benchmark prints. */
import type { Mode } from './load.ts';

export interface Row {
  /** What was measured: a gateway configuration (gateway, redis, workers-2, …) or direct (the sink alone). */
  readonly target: string;
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
  /** Runs this row is the median of (1 when not repeated). */
  readonly runs?: number;
}

/** Nearest-rank percentile of unsorted values (NaN when empty). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/**
 * The median of several runs of one point, column by column (each figure its own median, so a
 * row need not be one of the runs). Latencies are pooled; counts of failures are summed, so
 * that no failure of any run is hidden.
 */
export function medianRow(runs: readonly Row[]): Row {
  const first = runs[0];
  if (!first) throw new Error('medianRow: no runs');
  if (runs.length === 1) return first;
  const median = (f: (r: Row) => number): number => {
    const v = runs.map(f).sort((a, b) => a - b);
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  const sum = (f: (r: Row) => number): number => runs.reduce((a, r) => a + f(r), 0);
  const nullable = (f: (r: Row) => number | null): number | null => (f(first) === null ? null : median((r) => f(r) ?? 0));
  // msg/s and CPU per message are ratios: take the median run's elapsed time and CPU for the
  // median rate and cost, so the printed columns are the medians of those ratios.
  const rate = median((r) => r.accepted / r.elapsedMs);
  const accepted = median((r) => r.accepted);
  const cost = first.cpuSeconds === null ? null : median((r) => (r.cpuSeconds ?? 0) / Math.max(1, r.accepted));
  return {
    ...first,
    runs: runs.length,
    started: median((r) => r.started),
    accepted,
    errors: sum((r) => r.errors),
    missing: sum((r) => r.missing),
    extra: sum((r) => r.extra),
    unauthenticated: first.unauthenticated === null ? null : sum((r) => r.unauthenticated ?? 0),
    elapsedMs: accepted / rate,
    latenciesMs: runs.flatMap((r) => r.latenciesMs),
    cpuSeconds: cost === null ? null : cost * accepted,
    peakRssBytes: nullable((r) => r.peakRssBytes),
    benchCpuSeconds: median((r) => r.benchCpuSeconds / r.elapsedMs) * (accepted / rate),
  };
}

const COLUMNS = [
  ['target', 13], ['conc', 5], ['mode', 6], ['runs', 4], ['sent', 6], ['errors', 6], ['unverified', 10],
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
    String(row.runs ?? 1),
    String(Math.round(row.started)),
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
  runs         how often the point ran (--repeat N): figures are medians, errors are summed
  sent         messages started (bounded by duration and count)
  errors       non-250 replies and socket failures (listed below the table)
  unverified   250 without the message at the sink + messages at the sink without a 250
               + (gateway) messages relayed without dkim=pass and dmarc=pass; must be 0
  msg/s        250s per second of wall time
  p50/p99 ms   per message; fresh: connect to the end-of-data reply (includes smtp-server's
               100 ms greeting pause); reuse: MAIL FROM to the end-of-data reply
  CPU s/1k msg gateway user+system CPU seconds per 1,000 accepted messages (primary and workers)
  gw cores     gateway CPU seconds per wall second (1.00 = one core busy)
  peak RSS MB  gateway VmHWM during the point (with workers: the sum of each process's peak)
  bench cores  CPU of the bench process (load generator + sink + DNS) per wall second: near
               1.00 the bench itself, not the gateway, limits the rate`;
