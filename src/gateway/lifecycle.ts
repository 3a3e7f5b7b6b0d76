/**
 * Starting and stopping a gateway's parts, each in its order: start binds the SMTP listeners,
 * then starts the report scheduler, the DNS watch and the HTTP endpoint; stop drains the SMTP
 * sessions (drain.ts) before it closes anything they use (backend, store, resolver, files),
 * and the HTTP endpoint last, so /metrics can be read while the node drains.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import { VERSION } from '../core/version.ts';
import type { DnsHealth } from '../dns/health.ts';
import { startHttp, type HttpEndpoint, type ReadinessCheck } from '../observability/http.ts';
import type { Components } from './components.ts';
import { drain, type Wait } from './drain.ts';
import type { Front } from './front.ts';

interface Closable {
  close(): Promise<void>;
}

export interface GatewayParts {
  /** The configuration the gateway started with: listen addresses are restart-only. */
  readonly config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly front: Front;
  readonly components: Components;
  readonly extras: {
    readonly reporting: (Closable & { startScheduler(): void }) | null;
    readonly failureReports: Closable | null;
    readonly decisionFile: Closable | null;
  };
  readonly dnsWatch: Pick<DnsHealth, 'start' | 'close'>;
  readonly checks: readonly ReadinessCheck[];
  /** Rules in the set in force (for the start line). */
  readonly rules: () => number;
  /** The store was injected (a test sharing it): its owner closes it. */
  readonly storeInjected: boolean;
  /** The drain deadline's wait (tests inject one). */
  readonly wait: Wait | undefined;
}

export interface Lifecycle {
  start(): Promise<{ smtp: Array<{ host: string; port: number }>; http: number | null }>;
  /** Once: a second call (a second SIGTERM) waits for the same drain. */
  stop(): Promise<void>;
  /** True from the moment stop() was called: new sessions get 421. */
  draining(): boolean;
}

export function createLifecycle(parts: GatewayParts): Lifecycle {
  const { config, front, extras } = parts;
  let http: HttpEndpoint | null = null;
  let stopped: Promise<void> | null = null;
  let draining = false;
  return {
    draining: () => draining,
    async start() {
      const smtp = await front.listener.start();
      extras.reporting?.startScheduler();
      await parts.dnsWatch.start();
      if (config.metrics.listen) http = await startHttp(config.metrics.listen, parts.registry, () => parts.checks);
      parts.logger.info({
        version: VERSION, smtp, http: http?.port ?? null, domains: config.domains, backend: `${config.backend.host}:${config.backend.port}`,
        policies: config.policies, rules: parts.rules(),
      }, 'postern listening');
      return { smtp, http: http?.port ?? null };
    },
    stop() {
      stopped ??= (async () => {
        draining = true;
        const { components } = parts;
        await drain(front, config.shutdown.drainTimeoutMs, parts.wait);
        await front.listener.stop();
        await components.backend.close();
        await extras.reporting?.close();
        await extras.failureReports?.close();
        await extras.decisionFile?.close();
        if (!parts.storeInjected) await components.store.close();
        components.resolver.close();
        parts.dnsWatch.close();
        await http?.close();
      })();
      return stopped;
    },
  };
}
