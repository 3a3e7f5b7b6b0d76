/**
 * What the gateway tells the operator about its dependencies while it runs: the DNS
 * resolvers' state (one log line per change, postern_dns_up, /readyz), and at start a warning
 * when the backend does not answer, instead of silence until the first 451.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { createDnsHealth, type DnsHealth, type DnsHealthState, type ProbeFn } from '../dns/health.ts';
import { parseServer, systemServers, type DnsServer } from '../dns/index.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ReadinessCheck } from '../observability/http.ts';

/** The resolvers the gateway uses: the configured ones, else the system's (resolv.conf). */
export function dnsServersOf(config: Config): DnsServer[] {
  return config.dns.servers.length > 0 ? config.dns.servers.map(parseServer) : systemServers();
}

export function createDnsWatch(config: Config, servers: readonly DnsServer[], metrics: Metrics, logger: Logger, probe?: ProbeFn): DnsHealth {
  const target = servers.map((s) => `${s.host}:${s.port}`);
  return createDnsHealth({
    servers,
    timeoutMs: config.dns.timeoutMs,
    intervalMs: config.dns.probeIntervalMs,
    ...(probe ? { probe } : {}),
    onChange: (state: DnsHealthState, previous: DnsHealthState | null) => {
      metrics.dnsUp.set(state.up ? 1 : 0);
      if (!state.up) {
        logger.warn({ servers: target, error: state.error },
          'no DNS resolver answers: SPF, DKIM and DMARC give temperror and the default policy defers mail (451) until one does; check dns.servers');
      } else if (previous !== null) {
        logger.info({ servers: target }, 'DNS resolvers answer again');
      }
    },
  });
}

/** /readyz: not ready while no resolver answers (unknown before the first probe counts as ready). */
export function dnsReadiness(health: DnsHealth): ReadinessCheck {
  return {
    name: 'dns',
    check: () => {
      const state = health.state();
      return Promise.resolve(state === null || state.up ? { ok: true as const } : { ok: false as const, error: state.error });
    },
  };
}

/** One warning line when the backend does not answer at start (the gateway runs anyway: 451s until it does). */
export function warnIfBackendDown(probe: () => Promise<{ ok: true } | { ok: false; error: string }>, backend: string, logger: Logger): void {
  probe().then((r) => {
    if (!r.ok) logger.warn({ backend, error: r.error }, 'backend does not answer at start: every message gets 451 4.4.1 until it does; check backend.host and backend.port');
  }, (err: unknown) => logger.warn({ backend, error: (err as Error).message }, 'backend does not answer at start'));
}
