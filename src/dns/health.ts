/**
 * Whether any configured resolver answers. Without one, every SPF, DKIM and DMARC check is a
 * temperror and the default policy defers all mail (451 4.7.5): an outage that must show in
 * seconds, not as a slow rise of tempfails.
 *
 * The signal has two sources:
 * - probes: the root's NS records asked of every server directly (no cache), at start, every
 *   `intervalMs`, and at once when a real lookup fails. Any recursive resolver answers them
 *   from its priming data (RFC 8109), so an answer means "this resolver works";
 * - real lookups that got an answer (NOERROR, NXDOMAIN, NODATA) show a resolver works.
 * A failing real lookup alone proves nothing (one remote domain's servers may be broken, the
 * resolver answers SERVFAIL for it), so it only triggers a probe.
 */
import type { DnsLookupOutcome, DnsServer } from './types.ts';
import { exchange, TransportError } from './wire.ts';

export type DnsHealthState = { readonly up: true } | { readonly up: false; readonly error: string };

/** One server's answer to the probe: null when it answered, else why not. */
export type ProbeFn = (server: DnsServer, timeoutMs: number, signal: AbortSignal) => Promise<string | null>;

export interface DnsHealthOptions {
  readonly servers: readonly DnsServer[];
  readonly timeoutMs: number;
  /** Probe period while nothing else happens; 0 = probe only at start and after failed lookups. */
  readonly intervalMs: number;
  /** Every state change, the first probe's result included (previous null). */
  readonly onChange: (state: DnsHealthState, previous: DnsHealthState | null) => void;
  readonly probe?: ProbeFn;
}

export interface DnsHealth {
  /** Runs the first probe (resolves with its state) and starts the periodic ones. */
  start(): Promise<DnsHealthState>;
  /** Outcome of a real lookup (the resolver's observer). */
  observe(outcome: DnsLookupOutcome): void;
  /** null before the first probe has finished. */
  state(): DnsHealthState | null;
  close(): void;
}

const ANSWERED: ReadonlySet<DnsLookupOutcome> = new Set(['ok', 'nxdomain', 'nodata']);
/** RFC 1035 §4.1.1: NOERROR (0) and NXDOMAIN (3) are answers; anything else means this server does not resolve for us. */
const RCODE_WORDS: Readonly<Record<number, string>> = {
  1: 'formerr', 2: 'servfail', 4: 'notimp', 5: 'refused (the resolver does not serve this host: check its access list)',
};
/** A failed lookup triggers a probe at most this often (a remote domain's broken servers fail many lookups). */
const MIN_TRIGGERED_GAP_MS = 1000;

/** The probe over the wire: ". NS" with recursion desired. */
export const wireProbe: ProbeFn = async (server, timeoutMs, signal) => {
  try {
    const response = await exchange(server, { name: '.', type: 'NS' }, { timeoutMs, signal });
    const rcode = (response.flags ?? 0) & 0x0f;
    return rcode === 0 || rcode === 3 ? null : RCODE_WORDS[rcode] ?? `rcode ${rcode}`;
  } catch (err) {
    if (!(err instanceof TransportError)) return (err as Error).message;
    if (err.code === 'ETIMEOUT') return `timeout after ${timeoutMs} ms`;
    if (err.code === 'ECONNREFUSED') return `unreachable (${err.message})`;
    return `${err.code.toLowerCase()} (${err.message})`;
  }
};

export function createDnsHealth(opts: DnsHealthOptions): DnsHealth {
  const probe = opts.probe ?? wireProbe;
  const closing = new AbortController();
  let current: DnsHealthState | null = null;
  let running: Promise<DnsHealthState> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let lastProbe = -Infinity;
  let deferred: NodeJS.Timeout | null = null;

  const set = (next: DnsHealthState): DnsHealthState => {
    const previous = current;
    current = next;
    if (previous === null || previous.up !== next.up) opts.onChange(next, previous);
    return next;
  };

  const probeAll = (): Promise<DnsHealthState> => {
    if (!running) lastProbe = performance.now();
    running ??= Promise.all(opts.servers.map(async (s) => ({ s, why: await probe(s, opts.timeoutMs, closing.signal) })))
      .then((results) => {
        if (closing.signal.aborted) return current ?? { up: true as const };
        const failed = results.filter((r) => r.why !== null);
        if (failed.length < results.length) return set({ up: true });
        return set({ up: false, error: `no DNS resolver answers: ${failed.map((r) => `${r.s.host}:${r.s.port} ${r.why}`).join('; ')}` });
      })
      .finally(() => {
        running = null;
      });
    return running;
  };

  return {
    async start() {
      const first = await probeAll();
      if (opts.intervalMs > 0 && !closing.signal.aborted) {
        timer = setInterval(() => void probeAll(), opts.intervalMs);
        timer.unref();
      }
      return first;
    },
    observe(outcome) {
      if (closing.signal.aborted) return;
      if (ANSWERED.has(outcome)) {
        if (current !== null && !current.up) set({ up: true });
      } else if (!running && !deferred) {
        // at most one probe per MIN_TRIGGERED_GAP_MS: a failure soon after one waits for the gap
        const wait = lastProbe + MIN_TRIGGERED_GAP_MS - performance.now();
        if (wait <= 0) void probeAll();
        else {
          deferred = setTimeout(() => {
            deferred = null;
            if (!closing.signal.aborted) void probeAll();
          }, wait);
          deferred.unref();
        }
      }
    },
    state: () => current,
    close() {
      closing.abort();
      if (timer) clearInterval(timer);
      if (deferred) clearTimeout(deferred);
    },
  };
}
